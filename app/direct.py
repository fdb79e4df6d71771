"""Statements of the hot paths, compiled once and run on asyncpg itself.

A small statement costs asyncpg about 100 µs of CPU, and SQLAlchemy's execution layer about
170 µs more on top; an ORM statement costs 500 µs (on a 2-core machine). A patrol report runs
half a dozen, so on PostgreSQL these statements go straight to the driver, in the session's
transaction on its connection; in a write request that has not begun writing, a statement
marked as a read (`reads`) or as the request's whole last write (`alone`) runs in autocommit
(`app.db.RequestWrites`). On SQLite they run through the session as usual.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, NoReturn, cast

import asyncpg
from sqlalchemy import (
    BindParameter,
    ClauseElement,
    Executable,
    FromClause,
    bindparam,
    inspect,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import visitors
from sqlalchemy.sql.compiler import SQLCompiler

from app.db import (
    UNAVAILABLE_SQLSTATES,
    begin_writing,
    note_written_alone,
    reading_in_autocommit,
)

Row = Mapping[Any, Any]
_PROBE = text("SELECT 1")


@dataclass(frozen=True)
class _Parameter:
    name: str
    process: Callable[[Any], Any] | None
    required: bool  # of the caller; otherwise `value` (the statement's own) unless given
    value: Any

    def of(self, params: Mapping[str, Any]) -> Any:
        given = self.name in params or self.required
        value = params[self.name] if given else self.value
        return value if self.process is None else self.process(value)


class DirectStatement:
    """A Core statement without expanding IN lists, compiled for asyncpg the first time it
    runs there."""

    def __init__(self, statement: Executable, *, reads: bool = False) -> None:
        """`reads`: the statement only reads, and may run in autocommit."""
        for bind in visitors.iterate(cast(ClauseElement, statement)):
            if isinstance(bind, BindParameter) and (bind.expanding or bind.literal_execute):
                raise ValueError(f"{bind.key}: a parameter rendered per execution")
        self.statement = statement
        self.reads = reads
        self._compiled: tuple[str, list[_Parameter]] | None = None

    def _compile(self, dialect: Dialect) -> tuple[str, list[_Parameter]]:
        if self._compiled is None:
            compiled = cast(
                SQLCompiler, cast(ClauseElement, self.statement).compile(dialect=dialect)
            )
            parameters = []
            for name in compiled.positiontup or []:
                bind = compiled.binds[name]
                process = bind.type.dialect_impl(dialect).bind_processor(dialect)
                parameters.append(_Parameter(name, process, bind.required, bind.value))
            self._compiled = (compiled.string, parameters)
        return self._compiled

    async def rows(
        self,
        session: AsyncSession,
        params: Mapping[str, Any],
        *,
        autoflush: bool = True,
        alone: bool = False,
    ) -> Sequence[Row]:
        """The statement's rows. `autoflush` False: the statement itself writes the session's
        pending changes, which the caller then marks as stored. `alone`: the statement is a
        write whole in itself and the request's last, and runs in autocommit when the request
        has not begun writing (`app.db.RequestWrites`)."""
        if autoflush and (session.new or session.dirty or session.deleted):  # as the ORM's
            await session.flush()
        connection = await session.connection()
        if connection.dialect.name != "postgresql":
            result = await connection.execute(self.statement, params)
            return result.mappings().all() if result.returns_rows else []
        sql, parameters = self._compile(connection.dialect)
        args = [parameter.of(params) for parameter in parameters]
        driver: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
        orm_session = session.sync_session
        if reading_in_autocommit(orm_session) and (self.reads or alone):
            if alone:
                note_written_alone(orm_session)
        else:
            begin_writing(orm_session)
            if not driver.is_in_transaction() and not reading_in_autocommit(orm_session):
                await connection.execute(_PROBE)  # the adapter begins on a statement
        try:
            return await driver.fetch(sql, *args)
        except (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            OSError,
        ) as exc:
            sqlstate = str(getattr(exc, "sqlstate", ""))
            if driver.is_closed() or not sqlstate or sqlstate.startswith(UNAVAILABLE_SQLSTATES):
                await _discard(connection, exc)
            kind = IntegrityError if sqlstate.startswith("23") else DBAPIError
            raise kind(sql, None, exc) from exc

    async def first(
        self,
        session: AsyncSession,
        params: Mapping[str, Any],
        *,
        autoflush: bool = True,
        alone: bool = False,
    ) -> Row | None:
        rows = await self.rows(session, params, autoflush=autoflush, alone=alone)
        return rows[0] if rows else None

    async def objects(self, session: AsyncSession, params: Mapping[str, Any]) -> list[Any]:
        """The rows with their columns as attributes."""
        return [SimpleNamespace(**row) for row in await self.rows(session, params)]


async def _discard(connection: AsyncConnection, failure: Exception) -> NoReturn:
    """After the driver failed with its connection (dropped, or the server ending it): the
    connection is discarded, and the error is one the app answers with 503."""
    await connection.invalidate(failure)
    raise DBAPIError(None, None, failure, connection_invalidated=True) from failure


def _generated(column: Any) -> bool:
    """Whether the database numbers the column (an integer primary key)."""
    return column is column.table.autoincrement_column


def bound_row(table: FromClause, prefix: str = "row_") -> dict[str, BindParameter[Any]]:
    """VALUES for an INSERT of one row of `table`: every column but a generated key, bound as
    `<prefix><column>` (a bound name may not be a column's); `row_params` gives them."""
    return {
        column.key: bindparam(f"{prefix}{column.key}", type_=column.type)
        for column in table.c
        if not _generated(column)
    }


def row_params(instance: Any, prefix: str = "row_") -> dict[str, Any]:
    """The parameters of `bound_row` for an ORM object not yet flushed: its column values, else
    the columns' defaults, as a flush would insert them."""
    state = inspect(instance)
    mapper = state.mapper
    params = {}
    for column in mapper.local_table.c:
        key = column.key
        if key in state.dict:
            value = state.dict[key]
        elif _generated(column):
            continue
        elif column is mapper.version_id_col:
            value = 1
        elif column.default is not None and column.default.is_scalar:
            value = column.default.arg
        elif column.default is not None and column.default.is_callable:
            value = column.default.arg(None)  # wrapped to take an execution context
        elif column.server_default is not None or column.default is not None:
            raise ValueError(f"{key}: its default is computed by SQL; give it a value")
        else:
            value = None
        params[f"{prefix}{key}"] = value
    return params
