import ipaddress
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Delete, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import LoginThrottle, RefreshToken, Role, User
from app.auth.passwords import password_problem
from app.auth.schemas import TokenOut, UserCreate, UserUpdate
from app.auth.security import (
    digest,
    hash_password,
    issue_access_token,
    new_family_id,
    new_refresh_token,
    successor_refresh_token,
    verify_password,
)
from app.config import Settings
from app.errors import Conflict, Invalid, TooManyRequests, Unauthorized
from app.orgs.models import Department, Level, OrgUnit
from app.orgs.service import get_by_code

# The one answer to every refused sign-in, whether the account is unknown, locked, disabled or
# the password wrong: the answer must not tell which usernames exist.
BAD_CREDENTIALS = (
    "wrong username or password (after repeated failures an account is locked for a while)"
)
INVALID_REFRESH = "the refresh token is invalid, expired or revoked"


def username_is(username: str) -> ColumnElement[bool]:
    """Matches the user of that name whatever its case (served by uq_users_username_lower)."""
    return func.lower(User.username) == username.strip().lower()


def _tokens(user: User, refresh: str, settings: Settings, now: datetime) -> TokenOut:
    lifetime = timedelta(minutes=settings.access_token_minutes)
    access = issue_access_token(
        settings.secret_key, user.username, user.token_generation, now, lifetime, user.role
    )
    return TokenOut(
        access_token=access, expires_in=int(lifetime.total_seconds()), refresh_token=refresh
    )


def _store_refresh_token(
    session: AsyncSession,
    user: User,
    token: str,
    family_id: str,
    family_started_at: datetime,
    settings: Settings,
    now: datetime,
) -> None:
    """A refresh token lasts GRIDWORK_REFRESH_TOKEN_DAYS, and never beyond its family's end."""
    family_ends = family_started_at + timedelta(days=settings.refresh_family_days)
    session.add(
        RefreshToken(
            user_id=user.id,
            token_hash=digest(token),
            family_id=family_id,
            family_started_at=family_started_at,
            issued_at=now,
            expires_at=min(now + timedelta(days=settings.refresh_token_days), family_ends),
        )
    )


async def issue_tokens(
    session: AsyncSession, user: User, settings: Settings, now: datetime
) -> TokenOut:
    """Tokens of a new sign-in: its refresh token starts a family."""
    refresh = new_refresh_token()
    _store_refresh_token(session, user, refresh, new_family_id(), now, settings, now)
    return _tokens(user, refresh, settings, now)


def _lock_expired(now: datetime) -> ColumnElement[bool]:
    return or_(User.locked_until.is_(None), User.locked_until <= now)


async def _record_failed_login(
    session: AsyncSession, username: str, settings: Settings, now: datetime
) -> None:
    """Counts a wrong password against the account atomically; the failure that fills the
    window locks it. Run for unknown usernames too (matching no row), so that the answer takes
    the same steps whether the account exists or not."""
    window_start = now - timedelta(minutes=settings.login_failure_window_minutes)
    window_expired = (User.first_failed_login_at.is_(None)) | (
        User.first_failed_login_at < window_start
    )
    failures = await session.scalar(
        update(User)
        .where(username_is(username), _lock_expired(now))
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
            .where(username_is(username))
            .values(
                locked_until=now + timedelta(minutes=settings.login_lockout_minutes),
                failed_logins=0,
                first_failed_login_at=None,
            )
            .execution_options(synchronize_session=False)
        )


def address_key(host: str | None) -> str | None:
    """What sign-in failures are counted by: the client's IPv4 address, or the /64 network of
    an IPv6 one (a single host usually holds a whole /64)."""
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


async def _check_address(session: AsyncSession, address: str | None, now: datetime) -> None:
    if address is None:
        return
    locked_until = await session.scalar(
        select(LoginThrottle.locked_until).where(LoginThrottle.address == address)
    )
    if locked_until is not None and locked_until > now:
        raise TooManyRequests(
            "too many failed sign-ins from this address: try again later",
            headers={"Retry-After": str(int((locked_until - now).total_seconds()) + 1)},
        )


async def _record_address_failure(
    session: AsyncSession, address: str | None, settings: Settings, now: datetime
) -> None:
    """Counts a refused sign-in against the client address, in the database so that every API
    process counts together (one atomic upsert); the failure that fills the window locks the
    address for GRIDWORK_LOGIN_LOCKOUT_MINUTES."""
    if address is None:
        return
    window_start = now - timedelta(minutes=settings.login_failure_window_minutes)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    window_expired = LoginThrottle.window_started_at < window_start
    statement = (
        dialect.insert(LoginThrottle)
        .values(address=address, failures=1, window_started_at=now, locked_until=None)
        .on_conflict_do_update(
            index_elements=[LoginThrottle.address],
            set_={
                "failures": case((window_expired, 1), else_=LoginThrottle.failures + 1),
                "window_started_at": case(
                    (window_expired, now), else_=LoginThrottle.window_started_at
                ),
            },
        )
        .returning(LoginThrottle.failures)
    )
    failures = await session.scalar(statement)
    if failures is not None and failures >= settings.login_max_failures_per_address:
        await session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.address == address)
            .values(
                locked_until=now + timedelta(minutes=settings.login_lockout_minutes),
                failures=0,
                window_started_at=now,
            )
            .execution_options(synchronize_session=False)
        )


async def login(
    session: AsyncSession,
    username: str,
    password: str,
    settings: Settings,
    now: datetime,
    client_address: str | None = None,
) -> TokenOut:
    """Password grant; the username's case does not matter. Failures are recorded in
    `session`; the caller commits them even when this raises.

    A client address with too many failures is refused first (429: it says nothing about any
    account). Otherwise the password is checked whatever happens next (against a dummy hash for
    an unknown username), and an unknown, locked or disabled account or a wrong password all get
    the same 401 with the same body, so that the answer does not tell which usernames exist."""
    address = address_key(client_address)
    await _check_address(session, address, now)
    user = await session.scalar(select(User).where(username_is(username)))
    valid = await verify_password(user.password_hash if user else None, password)
    locked = user is not None and user.locked_until is not None and user.locked_until > now
    if user is None or not valid or locked or not user.is_active:
        if not valid:
            await _record_failed_login(session, username, settings, now)
        await _record_address_failure(session, address, settings, now)
        raise Unauthorized(BAD_CREDENTIALS)
    # Clear the failure count unless concurrent failures have locked the account meanwhile.
    cleared = await session.execute(
        update(User)
        .where(User.id == user.id, _lock_expired(now))
        .values(failed_logins=0, first_failed_login_at=None, locked_until=None)
        .execution_options(synchronize_session=False)
    )
    if cleared.rowcount != 1:  # type: ignore[attr-defined]
        await _record_address_failure(session, address, settings, now)
        raise Unauthorized(BAD_CREDENTIALS)
    return await issue_tokens(session, user, settings, now)


async def refresh(session: AsyncSession, token: str, settings: Settings, now: datetime) -> TokenOut:
    """Refresh-token grant with rotation: each refresh token is good for one use, plus a short
    grace for a phone resending after a lost reply, which gets the same successor again. A
    token used again after the grace has been stolen or copied, so its user is signed out
    everywhere. A family (the tokens rotated from one sign-in) ends GRIDWORK_REFRESH_FAMILY_DAYS
    after the sign-in, however often it was rotated."""
    stored = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == digest(token))
    )
    if stored is None or stored.revoked_at is not None:
        raise Unauthorized(INVALID_REFRESH)
    if stored.family_started_at + timedelta(days=settings.refresh_family_days) <= now:
        raise Unauthorized(
            f"this sign-in is more than {settings.refresh_family_days} days old: sign in again"
        )
    if stored.expires_at <= now:
        raise Unauthorized(INVALID_REFRESH)
    user = await session.get(User, stored.user_id)
    if user is None or not user.is_active:
        raise Unauthorized(INVALID_REFRESH)
    grace = timedelta(seconds=settings.refresh_reuse_grace_seconds)
    if stored.rotated_at is not None and now - stored.rotated_at > grace:
        await revoke_sessions(session, user, now)
        raise Unauthorized("the refresh token was used before: every session is signed out")
    successor = successor_refresh_token(settings.secret_key, token)
    rotated = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == stored.id,
            RefreshToken.revoked_at.is_(None),
            RefreshToken.rotated_at.is_(None),
        )
        .values(rotated_at=now)
        .execution_options(synchronize_session=False)
    )
    if rotated.rowcount == 1:  # type: ignore[attr-defined]
        _store_refresh_token(
            session, user, successor, stored.family_id, stored.family_started_at, settings, now
        )
    else:  # rotated before (a resend within the grace) or meanwhile, unless revoked meanwhile
        revoked_at = await session.scalar(
            select(RefreshToken.revoked_at).where(RefreshToken.id == stored.id)
        )
        if revoked_at is not None:
            raise Unauthorized(INVALID_REFRESH)
    return _tokens(user, successor, settings, now)


async def logout(session: AsyncSession, token: str, now: datetime) -> None:
    """Ends the sign-in `token` belongs to: every refresh token of its family is revoked. An
    unknown token changes nothing."""
    family_id = await session.scalar(
        select(RefreshToken.family_id).where(RefreshToken.token_hash == digest(token))
    )
    if family_id is None:
        return
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


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


async def _delete(session: AsyncSession, statement: Delete) -> int:
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def purge_expired_refresh_tokens(session: AsyncSession, now: datetime) -> int:
    """Deletes the refresh tokens expired by `now` (they can never be used again, and a family
    ends no later than its tokens); returns how many. The caller commits."""
    return await _delete(session, delete(RefreshToken).where(RefreshToken.expires_at <= now))


async def purge_stale_login_throttles(
    session: AsyncSession, settings: Settings, now: datetime
) -> int:
    """Deletes the sign-in failure counts of client addresses whose window and lock have both
    run out (such a row counts as nothing); returns how many. The caller commits."""
    window_start = now - timedelta(minutes=settings.login_failure_window_minutes)
    return await _delete(
        session,
        delete(LoginThrottle).where(
            LoginThrottle.window_started_at < window_start,
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now),
        ),
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
    """Creates a user; a username taken in any case (`Worker` when `worker` exists) is a 409."""
    taken = await session.scalar(select(User.username).where(username_is(data.username)))
    if taken is not None:
        raise Conflict(f"user {taken!r} already exists (usernames ignore case)")
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
        problem = password_problem(data.password, user.username)
        if problem is not None:
            raise Invalid(problem, loc=["body", "password"])
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
    try:
        data = UserCreate(
            username=username, password=password, display_name=username, role=Role.admin
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"GRIDWORK_BOOTSTRAP_ADMIN is not acceptable: {problems}") from exc
    await create_user(session, data, now)
    return True
