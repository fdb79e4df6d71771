from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, case, func, or_, select, update
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
from app.orgs.models import Department, Level, OrgUnit
from app.orgs.service import get_by_code

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


def _lock_expired(now: datetime) -> ColumnElement[bool]:
    return or_(User.locked_until.is_(None), User.locked_until <= now)


async def login(
    session: AsyncSession, username: str, password: str, settings: Settings, now: datetime
) -> TokenOut:
    """Password grant. Failures are recorded in `session`; the caller commits them even when
    this raises. The password is checked first whatever happens next, so the answer's timing
    does not tell locked, disabled or unknown accounts apart."""
    user = await session.scalar(select(User).where(User.username == username))
    valid = await verify_password(user.password_hash if user else None, password)
    if user is None:
        raise Unauthorized(BAD_CREDENTIALS)
    if user.locked_until is not None and user.locked_until > now:
        raise _locked(user.locked_until, now)
    if not valid:
        await _record_failed_login(session, user, settings, now)
        raise Unauthorized(BAD_CREDENTIALS)
    if not user.is_active:
        raise Unauthorized(BAD_CREDENTIALS)
    # Clear the failure count unless concurrent failures have locked the account meanwhile.
    cleared = await session.execute(
        update(User)
        .where(User.id == user.id, _lock_expired(now))
        .values(failed_logins=0, first_failed_login_at=None, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    if cleared.rowcount != 1:  # type: ignore[attr-defined]
        raise _locked(now + timedelta(minutes=settings.login_lockout_minutes), now)
    return await issue_tokens(session, user, settings, now)


def _locked(until: datetime, now: datetime) -> TooManyRequests:
    return TooManyRequests(
        "too many failed logins: this account is locked for a while",
        headers={"Retry-After": str(int((until - now).total_seconds()) + 1)},
    )


async def refresh(session: AsyncSession, token: str, settings: Settings, now: datetime) -> TokenOut:
    """Refresh-token grant with rotation: each refresh token is good for one use, plus a short
    grace for a phone resending after a lost reply. A token used again after the grace has been
    stolen or copied, so its user is signed out everywhere."""
    stored = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest(token))
    )
    if stored is None or stored.expires_at <= now or stored.revoked_at is not None:
        raise Unauthorized("the refresh token is invalid, expired or revoked")
    user = await session.get(User, stored.user_id)
    if user is None or not user.is_active:
        raise Unauthorized("the refresh token is invalid, expired or revoked")
    grace = timedelta(seconds=settings.refresh_reuse_grace_seconds)
    if stored.rotated_at is not None and now - stored.rotated_at > grace:
        await revoke_sessions(session, user, now)
        raise Unauthorized("the refresh token was used before: every session is signed out")
    rotated = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == stored.id, RefreshToken.revoked_at.is_(None))
        .values(rotated_at=func.coalesce(RefreshToken.rotated_at, now))
        .execution_options(synchronize_session=False)
    )
    if rotated.rowcount != 1:  # type: ignore[attr-defined]
        raise Unauthorized("the refresh token is invalid, expired or revoked")
    return await issue_tokens(session, user, settings, now)


async def revoke_sessions(session: AsyncSession, user: User, now: datetime) -> None:
    """Signs the user out everywhere: access tokens stop working at once, refresh tokens too."""
    await session.execute(
        update(User)
        .where(User.id == user.id)
        .values(token_generation=User.token_generation + 1)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


async def _check_assignment(
    session: AsyncSession, role: Role, org_unit_code: str | None, department_code: str | None
) -> None:
    """The org unit and department a role needs: grid workers sit in a grid, handlers in a
    department, dispatchers and supervisors in a district, town or community."""
    if org_unit_code is None:
        if role != Role.admin:
            raise Invalid(f"a {role} needs an org unit", loc=["body", "org_unit_code"])
    else:
        unit = await get_by_code(session, OrgUnit, org_unit_code, ["body", "org_unit_code"])
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
        await get_by_code(session, Department, department_code, ["body", "department_code"])
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
