import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import IntegrityError, InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, SessionTransaction
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from app.config import Settings

DEFAULT_TIMEZONE = "Asia/Shanghai"
# Connection exceptions, and the server shutting down, crashed or still starting up.
UNAVAILABLE_SQLSTATES = ("08", "57P")
# Session.info key: the service's time zone, for what a flush computes in local time.
TIMEZONE_KEY = "timezone"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on the way in and out, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _local_date(stamp: str | None, timezone: str) -> str | None:
    """SQLite's `local_date(timestamp, zone)`: the YYYY-MM-DD day of a stored UTC timestamp in
    `zone`, daylight saving included (PostgreSQL has `timezone()`)."""
    if stamp is None:
        return None
    moment = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(timezone)).date().isoformat()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.create_function("local_date", 2, _local_date, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns (history details, duplicate hints) go through orjson: every ticket of a list
# has one to read.
JSON_CODEC = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


# Statement parameters stay out of errors and logs: they hold citizens' names and phones,
# password hashes and tokens.
ENGINE_OPTIONS: dict[str, Any] = {**JSON_CODEC, "hide_parameters": True}


def make_engine(
    url: str,
    pool_size: int = 10,
    *,
    reads: bool = False,
    replica: bool = False,
    application_name: str | None = None,
) -> AsyncEngine:
    """An engine of `pool_size` pooled connections, and as many more at a peak. `reads`: one
    whose connections only read, each statement on its own (`READS_SETTINGS` below)."""
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 10}, **ENGINE_OPTIONS)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    name = application_name or ("gridwork-reads" if reads else "gridwork")
    settings = READS_SETTINGS if reads else {}
    connect_args: dict[str, Any] = {
        "server_settings": {"application_name": name} | settings,
        "max_cacheable_statement_size": MAX_CACHED_STATEMENT_BYTES,
    }
    if replica:
        connect_args |= {"timeout": REPLICA_CONNECT_SECONDS, "command_timeout": REPLICA_SECONDS}
    options = {"isolation_level": "AUTOCOMMIT"} if reads else {}
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args=connect_args,
        **ENGINE_OPTIONS,
        **options,
    )
    event.listen(engine.sync_engine, "checkin", _note_idle)
    event.listen(engine.sync_engine, "checkout", _ping_if_idle)
    return engine


# asyncpg keeps a statement prepared on its connection only up to this size (15 KiB by
# default). The statements of `app/direct.py` that write a change with its rollups' upkeep are
# larger: sent unnamed, each was parsed and planned anew, 4-5 ms of the server's time a change.
MAX_CACHED_STATEMENT_BYTES = 256 * 1024

# A replica behind a dropped route must not hold a request for asyncpg's default 60 s to
# connect, nor for TCP's retries (a quarter of an hour) for an answer.
REPLICA_CONNECT_SECONDS = 2.0
REPLICA_SECONDS = 60.0

# The pools a request takes its turn at (`Database.turn`); a replica's is its name.
WRITES = "writes"
READS_POOL = "reads"

# Connections of reads on PostgreSQL: in autocommit, so that a read is its statements and no
# BEGIN and ROLLBACK around them; refusing writes, so that a write put there by mistake fails
# at once; and planning each statement for its values. asyncpg prepares every statement, and
# after five runs PostgreSQL may keep a generic plan that ignores the values: one fit for a
# grid's tickets then scans a district's.
READS_SETTINGS = {"default_transaction_read_only": "on", "plan_cache_mode": "force_custom_plan"}


# A connection back from a request within this many seconds is used again without a ping (a
# ping is three round trips: SQLAlchemy's pre-ping on every checkout doubled the cost of a
# read). If the server dropped it meanwhile, that request fails with 503, and the failure
# discards every pooled connection opened before it.
PING_AFTER_IDLE_SECONDS = 10.0
_IDLE_SINCE = "idle_since"


def _note_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    idle_since = record.info.get(_IDLE_SINCE)
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
        return
    try:
        dbapi_connection.ping()
    except Exception as exc:  # the pool replaces every older connection and tries again
        raise InvalidatePoolError("the pooled connection is gone") from exc


class RequestWrites(Session):
    """The session of a write request on PostgreSQL. It reads in autocommit, so that looking up
    the caller and the ticket costs their statements alone (no BEGIN), and begins a transaction
    just before its first write: a flush, a DML or raw statement, a locking read
    (`begin_writing`). A write whole in one statement may run in autocommit too
    (`app/direct.py`), as the request's last write. Under READ COMMITTED each statement reads
    its own snapshot either way; what guards a change decided on what was read is the
    `version` check of its UPDATE, or the lock of a locking read, inside the transaction."""


_WRITTEN_ALONE = "written_alone"  # Session.info: a write ran in autocommit, whole in itself


def _driver_adapter(connection: Connection) -> Any:
    return connection.connection.dbapi_connection


def reading_in_autocommit(session: Session) -> bool:
    """Whether the session's next statement runs in autocommit: a read connection, or a write
    request's before its first write."""
    return bool(_driver_adapter(session.connection()).autocommit)


def begin_writing(session: Session) -> None:
    """A write request's next statement begins its transaction (a no-op on other sessions, or
    once begun)."""
    if not isinstance(session, RequestWrites):
        return
    adapter = _driver_adapter(session.connection())
    if adapter.autocommit:
        if session.info.get(_WRITTEN_ALONE):
            raise RuntimeError("a write whole in one statement must be the request's last")
        adapter.autocommit = False  # the engine's own setting: a transaction at the next


def note_written_alone(session: Session) -> None:
    session.info[_WRITTEN_ALONE] = True


@event.listens_for(RequestWrites, "after_begin")
def _read_in_autocommit(
    _session: Session, transaction: SessionTransaction, connection: Connection
) -> None:
    adapter = _driver_adapter(connection)
    if not transaction.nested and not adapter.driver_connection.is_in_transaction():
        adapter.autocommit = True


@event.listens_for(RequestWrites, "do_orm_execute")
def _begin_before_a_write(state: ORMExecuteState) -> None:
    if state.is_select and getattr(state.statement, "_for_update_arg", None) is None:
        return
    begin_writing(state.session)


@event.listens_for(RequestWrites, "before_flush")
def _begin_before_flushing(session: Session, _context: Any, _instances: Any) -> None:
    # (an object written by a statement of its own stays listed as dirty, changing nothing)
    if session.new or session.deleted or any(map(session.is_modified, session.dirty)):
        begin_writing(session)


@event.listens_for(RequestWrites, "after_commit")
@event.listens_for(RequestWrites, "after_rollback")
def _transaction_done(session: Session) -> None:
    session.info.pop(_WRITTEN_ALONE, None)


def _begin_before_a_savepoint(connection: Connection, _name: str | None) -> None:
    adapter = _driver_adapter(connection)
    if adapter.autocommit:  # a write request's, reading so far (a savepoint needs a transaction)
        adapter.autocommit = False


def _transactional_again(dbapi_connection: Any, _record: Any) -> None:
    """A connection back from a write request: transactions again for whoever takes it next."""
    if dbapi_connection is not None:
        dbapi_connection.autocommit = False


R = TypeVar("R", bound=Base)


async def add_once(
    session: AsyncSession,
    row: R,
    find_existing: Callable[[], Awaitable[R | None]],
) -> tuple[R, bool]:
    """Adds `row`, whose unique key says it may have been added already (a phone resending a
    request): returns (row, True), or (the row stored first, False) when a concurrent request
    stored the same key meanwhile. (The rollback expires the session's objects.)"""
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        if (existing := await find_existing()) is not None:
            return existing, False
        raise
    return row, True


class Database:
    """The engine of every write, and on PostgreSQL a second pool of connections for requests
    that only read (`reads`). On SQLite both are one."""

    def __init__(
        self,
        url: str,
        pool_size: int = 10,
        timezone: str = DEFAULT_TIMEZONE,
        reference_check_seconds: float = 2.0,
        replica_urls: Sequence[str] = (),
        replica_max_lag_seconds: float = 5.0,
    ) -> None:
        from app.reference import CACHE_KEY, ReferenceCache  # its models are built on Base
        from app.replicas import Replica, Replicas, replica_name

        self.url = url
        self.engine = make_engine(url, pool_size)
        self.reference = ReferenceCache(reference_check_seconds)
        self.reference.watch(self.engine)
        info = {TIMEZONE_KEY: timezone, CACHE_KEY: self.reference}
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, info=info)
        self.request_writes = self.sessions
        if not is_sqlite(url):
            self.request_writes = async_sessionmaker(
                self.engine, expire_on_commit=False, info=info, sync_session_class=RequestWrites
            )
            event.listen(self.engine.sync_engine, "checkin", _transactional_again)
            event.listen(self.engine.sync_engine, "savepoint", _begin_before_a_savepoint)
        self.reader = self.engine if is_sqlite(url) else make_engine(url, pool_size, reads=True)
        self.reads = async_sessionmaker(self.reader, expire_on_commit=False, info=info)
        replicas = []
        for replica_url in replica_urls:  # each with reference data as of its own replay
            engine = make_engine(replica_url, pool_size, reads=True, replica=True)
            own = {TIMEZONE_KEY: timezone, CACHE_KEY: ReferenceCache(reference_check_seconds)}
            sessions = async_sessionmaker(engine, expire_on_commit=False, info=own)
            checker = make_engine(
                replica_url,
                1,
                reads=True,
                replica=True,
                application_name="gridwork-lag-check",
            )
            replicas.append(Replica(replica_name(replica_url), engine, sessions, checker))
        self.replicas = Replicas(replicas, replica_max_lag_seconds)
        self._capacity = 2 * pool_size  # each pool's connections at a peak
        self._turns: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[Hashable, asyncio.Semaphore]
        ] = weakref.WeakKeyDictionary()

    def turn(self, pool: Hashable) -> AbstractAsyncContextManager[Any]:
        """A request's turn at one of the pools (`WRITES`, `READS_POOL` or a replica's name), in the
        order requests asked. A pool hands a returned connection to whoever asks next, so under
        a load past its size a request that began waiting could wait until the load ended
        (seconds, in `make bench`)."""
        if self.is_sqlite:
            return nullcontext()
        turns = self._turns.setdefault(asyncio.get_running_loop(), {})
        if pool not in turns:
            turns[pool] = asyncio.Semaphore(self._capacity)
        return turns[pool]

    @classmethod
    def for_settings(cls, settings: "Settings") -> "Database":
        return cls(
            settings.database_url,
            settings.database_pool_size,
            settings.timezone,
            settings.reference_check_seconds,
            settings.replica_urls,
            settings.replica_max_lag_seconds,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def engines(self) -> list[AsyncEngine]:
        """The engines of requests: writes, reads, and the replicas'."""
        own = [self.engine] if self.reader is self.engine else [self.engine, self.reader]
        return own + [replica.engine for replica in self.replicas.replicas]

    async def dispose(self) -> None:
        for engine in self.engines:
            await engine.dispose()
        for replica in self.replicas.replicas:
            await replica.checker.dispose()
