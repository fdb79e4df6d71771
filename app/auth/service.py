from datetime import datetime, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import RefreshToken, Role, User
from app.auth.schemas import TokenOut, UserCreate, UserUpdate
from app.auth.security import (
    digest,
    hash_password,
    issue_access_token,
    new_refresh_token,
    verify_password,
)
from app.config import Settings
from app.errors import Conflict, Invalid, TooManyRequests, Unauthorized
from app.orgs.models import Level
from app.orgs.service import find_department, find_org_unit

BAD_CREDENTIALS = "wrong username or password"


async def issue_tokens(
    session: AsyncSession, user: User, settings: Settings, now: datetime
) -> TokenOut:
    lifetime = timedelta(minutes=settings.access_token_minutes)
    refresh = new_refresh_token()
    session.add(
        RefreshToken(
            user_id=user.id,
            token_hash=digest(refresh),
            issued_at=now,
            expires_at=now + timedelta(days=settings.refresh_token_days),
        )
    )
    access = issue_access_token(
        settings.secret_key, user.username, user.token_generation, now, lifetime
    )
    return TokenOut(
        access_token=access, expires_in=int(lifetime.total_seconds()), refresh_token=refresh
    )


async def _record_failed_login(
    session: AsyncSession, user: User, settings: Settings, now: datetime
) -> None:
    """Counts a failure atomically; the failure that fills the window locks the account."""
    window_start = now - timedelta(minutes=settings.login_failure_window_minutes)
    window_expired = (User.first_failed_login_at.is_(None)) | (
        User.first_failed_login_at < window_start
    )
    failures = await session.scalar(
        update(User)
        .where(User.id == user.id)
        .values(
            failed_logins=case((window_expired, 1), else_=User.failed_logins + 1),
            first_failed_login_at=case((window_expired, now), else_=User.first_failed_login_at),
        )
        .returning(User.failed_logins)
        .execution_options(synchronize_session=False)
    )
    if failures is not None and failures >= settings.login_max_failures:
        await session.execute(
            update(User)
            .where(User.id == user.id)
            .values(
                locked_until=now + timedelta(minutes=settings.login_lockout_minutes),
                failed_logins=0,
                first_failed_login_at=None,
            )
            .execution_options(synchronize_session=False)
        )


async def login(
    session: AsyncSession, username: str, password: str, settings: Settings, now: datetime
) -> TokenOut:
    """Password grant. Failures are recorded in `session`; the caller commits them even when
    this raises."""
    user = await session.scalar(select(User).where(User.username == username))
    if user is not None and user.locked_until is not None and user.locked_until > now:
        retry = int((user.locked_until - now).total_seconds()) + 1
        raise TooManyRequests(
            "too many failed logins: this account is locked for a while",
            headers={"Retry-After": str(retry)},
        )
    valid = await verify_password(user.password_hash if user else None, password)
    if user is None or not valid:
        if user is not None:
            await _record_failed_login(session, user, settings, now)
        raise Unauthorized(BAD_CREDENTIALS)
    if not user.is_active:
        raise Unauthorized("this account is disabled")
    if user.failed_logins or user.locked_until:
        user.failed_logins, user.first_failed_login_at, user.locked_until = 0, None, None
    return await issue_tokens(session, user, settings, now)


async def refresh(session: AsyncSession, token: str, settings: Settings, now: datetime) -> TokenOut:
    """Refresh-token grant with rotation. Presenting a token already used revokes every
    refresh token of its user: one of the two holders is not the phone it was issued to."""
    stored = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest(token))
    )
    if stored is None or stored.expires_at <= now:
        raise Unauthorized("the refresh token is invalid or has expired")
    if stored.revoked_at is not None:
        await revoke_refresh_tokens(session, stored.user_id, now)
        raise Unauthorized("the refresh token has been revoked")
    user = await session.get(User, stored.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("this account is disabled")
    claimed = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == stored.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Unauthorized("the refresh token has been revoked")
    return await issue_tokens(session, user, settings, now)


async def revoke_refresh_tokens(session: AsyncSession, user_id: int, now: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


async def revoke_sessions(session: AsyncSession, user: User, now: datetime) -> None:
    """Signs the user out everywhere: access tokens stop working at once, refresh tokens too."""
    user.token_generation += 1
    await revoke_refresh_tokens(session, user.id, now)


async def _check_assignment(
    session: AsyncSession, role: Role, org_unit_code: str | None, department_code: str | None
) -> None:
    """The org unit and department a role needs: grid workers sit in a grid, handlers in a
    department, dispatchers and supervisors in a district, town or community."""
    if org_unit_code is None:
        if role != Role.admin:
            raise Invalid(f"a {role} needs an org unit", loc=["body", "org_unit_code"])
    else:
        unit = await find_org_unit(session, org_unit_code, ["body", "org_unit_code"])
        if role == Role.grid_worker and unit.level != Level.grid:
            raise Invalid("a grid worker's org unit must be a grid", loc=["body", "org_unit_code"])
        if role in (Role.dispatcher, Role.supervisor) and unit.level == Level.grid:
            raise Invalid(
                f"a {role} works for a district, town or community, not a grid",
                loc=["body", "org_unit_code"],
            )
    if role == Role.handler:
        if department_code is None:
            raise Invalid("a handler needs a department", loc=["body", "department_code"])
        await find_department(session, department_code, ["body", "department_code"])
    elif department_code is not None:
        raise Invalid(f"a {role} has no department", loc=["body", "department_code"])


async def create_user(session: AsyncSession, data: UserCreate, now: datetime) -> User:
    taken = await session.scalar(select(func.count()).where(User.username == data.username))
    if taken:
        raise Conflict(f"user {data.username!r} already exists")
    await _check_assignment(session, data.role, data.org_unit_code, data.department_code)
    user = User(
        username=data.username,
        password_hash=await hash_password(data.password),
        display_name=data.display_name,
        role=data.role,
        org_unit_code=data.org_unit_code,
        department_code=data.department_code,
        is_active=True,
        token_generation=0,
        failed_logins=0,
        created_at=now,
    )
    session.add(user)
    await session.flush()
    return user


async def update_user(session: AsyncSession, user: User, data: UserUpdate, now: datetime) -> User:
    changes = data.model_dump(exclude_unset=True)
    role = Role(changes.get("role") or user.role)
    org_unit_code = changes.get("org_unit_code", user.org_unit_code)
    department_code = changes.get("department_code", user.department_code)
    await _check_assignment(session, role, org_unit_code, department_code)
    user.role, user.org_unit_code, user.department_code = role, org_unit_code, department_code
    if data.display_name is not None:
        user.display_name = data.display_name
    if data.password is not None:
        user.password_hash = await hash_password(data.password)
        user.locked_until = None
        await revoke_sessions(session, user, now)
    if data.is_active is not None and data.is_active != user.is_active:
        user.is_active = data.is_active
        if not data.is_active:
            await revoke_sessions(session, user, now)
    await session.flush()
    return user


async def ensure_bootstrap_admin(session: AsyncSession, settings: Settings, now: datetime) -> bool:
    """Creates the GRIDWORK_BOOTSTRAP_ADMIN account when the database has no users."""
    credentials = settings.bootstrap_credentials
    if credentials is None or await session.scalar(select(func.count()).select_from(User)):
        return False
    username, password = credentials
    await create_user(
        session,
        UserCreate(username=username, password=password, display_name=username, role=Role.admin),
        now,
    )
    return True
