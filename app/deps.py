import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from types import SimpleNamespace
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import bindparam, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import Role, User
from app.auth.security import read_access_token
from app.clock import Clock
from app.config import Settings
from app.db import READS_POOL, WRITES, Database
from app.direct import DirectStatement
from app.errors import Forbidden, Unauthorized
from app.orgs.models import UNIT_COLUMNS, OrgUnit

T = TypeVar("T")
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


# Dependencies are coroutines: FastAPI runs a plain function or a class in a worker thread,
# a hop that costs more than most of them do.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


# Methods that only read: their requests run on the database's read connections.
READ_METHODS = frozenset({"GET", "HEAD"})


# An endpoint's attribute: its reads may be a few seconds behind (`reads_from_replica`).
_REPLICA_READ = "gridwork_replica_read"


def reads_from_replica(endpoint: Callable[..., T]) -> Callable[..., T]:
    """Marks a GET endpoint whose reads may be a few seconds behind the last writes
    (statistics, appraisals, exports, lists): they are served by a replica when one is in use
    and the caller has not just written through this process (`app/replicas.py`)."""
    setattr(endpoint, _REPLICA_READ, True)
    return endpoint


def _in_the_field(authorization: str | None, request: Request) -> bool:
    """A grid worker's lists are their phone's own reports and to-dos, read right after the
    phone sends: always on the primary. (The role in the token is only a hint for this.)"""
    if not authorization or not authorization.startswith("Bearer "):
        return False
    state = request.app.state
    token = authorization.removeprefix("Bearer ")
    claims = read_access_token(state.settings.secret_key, token, state.clock.now())
    return claims is not None and claims.role == Role.grid_worker


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    database: Database = request.app.state.database
    token = request.headers.get("authorization")
    if request.method not in READ_METHODS:
        # Noted first: the code after a dependency's `yield` runs once the response is sent,
        # after the client may already have asked to read what it wrote.
        database.replicas.note_write(token)
        async with database.turn(WRITES), database.request_writes() as session:
            yield session
        return
    if getattr(request.scope.get("endpoint"), _REPLICA_READ, False) and not _in_the_field(
        token, request
    ):
        replica = database.replicas.choose(token)
        if replica is not None:
            async with database.turn(replica.name), replica.sessions() as session:
                if await replica.connects(session):
                    try:
                        yield session
                    except DBAPIError as exc:  # this request fails (503), the next do not
                        if exc.connection_invalidated:
                            await replica.retire(f"its connection broke: {exc}")
                        raise
                    return
    async with database.turn(READS_POOL), database.reads() as session:
        yield session


def built_by_coroutine(cls: Callable[..., T]) -> Callable[..., Coroutine[Any, Any, T]]:
    """A dependency that builds `cls` (a dataclass of other dependencies and parameters) from
    the same parameters, as a coroutine."""

    async def build(**values: Any) -> T:
        return cls(**values)

    build.__signature__ = inspect.signature(cls)  # type: ignore[attr-defined]
    return build


SettingsDep = Annotated[Settings, Depends(get_settings)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]


# The caller and their unit, to read: each request names one (a unit's boundary is the grid
# map's, in the reference data).
_USER_NAMED = DirectStatement(
    select(*User.__table__.c, *(column.label(f"unit_{column.key}") for column in UNIT_COLUMNS))
    .outerjoin(OrgUnit, OrgUnit.code == User.org_unit_code)
    .where(User.username == bindparam("username")),
    reads=True,
)


def _read_only_user(row: Mapping[str, Any]) -> User:
    """A row of `_USER_NAMED` as a User with its `org_unit`, to read: an ORM object's loading
    cost every request a tenth of its time."""
    values = dict(row)
    unit = {column.key: values.pop(f"unit_{column.key}") for column in UNIT_COLUMNS}
    org_unit = SimpleNamespace(**unit) if unit["code"] is not None else None
    return cast(User, SimpleNamespace(**values, org_unit=org_unit))


async def get_current_user(
    request: Request, session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> User:
    # Settings and clock straight from the app: every dependency costs FastAPI a walk of its
    # subtree on every request, and this one is on all of them.
    state = request.app.state
    if not token:
        raise Unauthorized()
    claims = read_access_token(state.settings.secret_key, token, state.clock.now())
    if claims is None:
        raise Unauthorized("the bearer token is invalid or has expired")
    row = await _USER_NAMED.first(session, {"username": claims.username})
    if row is None or not row["is_active"] or row["token_generation"] != claims.generation:
        raise Unauthorized("the bearer token has been revoked")
    return _read_only_user(row)


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_roles(*roles: Role, admin: bool = True) -> Callable[..., Coroutine[Any, Any, User]]:
    """Only these roles (and admins, unless `admin` is False) pass; others get 403."""
    allowed = frozenset(roles) | ({Role.admin} if admin else set())

    async def check(user: CurrentUser) -> User:
        if user.role not in allowed:
            names = ", ".join(sorted(allowed))
            raise Forbidden(f"this needs one of the roles: {names}")
        return user

    return check


AdminUser = Annotated[User, Depends(require_roles(Role.admin))]
