"""Statements run on the driver itself (app.direct): the same results, transaction and errors
as through SQLAlchemy, on both databases."""

import asyncio
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import bindparam, func, insert, literal, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.clock import FrozenClock
from app.db import Database
from app.direct import DirectStatement, bound_row, row_params
from app.orgs.models import Category
from app.tickets.models import Ticket
from tests.conftest import START

_CATEGORY_NAMED = DirectStatement(
    select(
        Category.code, Category.duplicate_radius_m, func.coalesce(None, literal(7)).label("seven")
    ).where(Category.code == bindparam("code"))
)
_ADD_CATEGORY = DirectStatement(insert(Category).values(bound_row(Category.__table__)))


def _category(code: str, **values: Any) -> Category:
    return Category(
        **{
            "code": code,
            "name": code,
            "time_limit_value": 2,
            "time_limit_unit": "hours",
            "created_at": START,
        }
        | values
    )


async def test_rows_bind_given_and_literal_parameters(world: Database) -> None:
    async with world.sessions() as session:
        rows = await _CATEGORY_NAMED.rows(session, {"code": "road_damage"})
        assert [dict(row) for row in rows] == [
            {"code": "road_damage", "duplicate_radius_m": 100, "seven": 7}
        ]
        assert await _CATEGORY_NAMED.first(session, {"code": "nothing"}) is None


async def test_a_write_belongs_to_the_session_transaction(world: Database) -> None:
    async with world.sessions() as session:  # the statement is the transaction's first
        await _ADD_CATEGORY.rows(session, row_params(_category("kept_back")))
        assert await _CATEGORY_NAMED.first(session, {"code": "kept_back"}) is not None
        await session.rollback()
        assert await _CATEGORY_NAMED.first(session, {"code": "kept_back"}) is None
        await _ADD_CATEGORY.rows(session, row_params(_category("kept")))
        await session.commit()
    async with world.sessions() as session:
        kept = await _CATEGORY_NAMED.first(session, {"code": "kept"})
        assert kept is not None and kept["duplicate_radius_m"] == 100  # the columns' defaults
        stored = await session.get(Category, "kept")
        assert stored is not None and stored.attributes == []


async def test_refusals_raise_sqlalchemy_errors(world: Database) -> None:
    async with world.sessions() as session:
        with pytest.raises(IntegrityError):  # the code is taken
            await _ADD_CATEGORY.rows(session, row_params(_category("road_damage")))
    async with world.sessions() as session:
        with pytest.raises(IntegrityError):  # a check constraint: limits are positive
            await _ADD_CATEGORY.rows(session, row_params(_category("x", time_limit_value=0)))
    if world.is_sqlite:
        return
    async with world.sessions() as session:  # a data exception carries its SQLSTATE
        with pytest.raises(DBAPIError) as refused:
            await _ADD_CATEGORY.rows(session, row_params(_category("y" * 40)))
        assert str(getattr(refused.value.orig, "sqlstate", "")).startswith("22")


def test_row_params_are_what_a_flush_would_insert(clock: FrozenClock) -> None:
    now: datetime = clock.now()
    ticket = Ticket(status="reported", level="community", description="d", reported_at=now)
    params = row_params(ticket)
    assert "row_id" not in params
    assert params["row_status"] == "reported" and params["row_reported_at"] == now
    assert params["row_source"] == "patrol" and params["row_escalation_count"] == 0
    assert params["row_version"] == 1 and params["row_duplicate_of"] is None
    assert set(params) == {f"row_{key}" for key in bound_row(Ticket.__table__)}


async def test_a_connection_the_server_ends_is_discarded(world: Database) -> None:
    if world.is_sqlite:
        pytest.skip("PostgreSQL's connections only")
    async with world.sessions() as session:
        await _CATEGORY_NAMED.rows(session, {"code": "road_damage"})
        backend = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with world.engine.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
            gone = text("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = :pid")
            for _ in range(500):  # the backend ends a moment after the signal
                if (await other.execute(gone, {"pid": backend})).scalar_one():
                    break
                await other.rollback()  # a fresh snapshot of the activity
                await asyncio.sleep(0.01)
            else:
                pytest.fail(f"backend {backend} did not end")
        with pytest.raises(DBAPIError) as failed:  # the app answers it with 503
            await _CATEGORY_NAMED.rows(session, {"code": "road_damage"})
        assert failed.value.connection_invalidated
    async with world.sessions() as session:  # closed cleanly above; a fresh connection here
        assert await _CATEGORY_NAMED.first(session, {"code": "road_damage"}) is not None


def test_what_cannot_be_compiled_once_is_refused() -> None:
    with pytest.raises(ValueError, match="statuses"):
        statuses = bindparam("statuses", expanding=True)
        DirectStatement(select(Ticket.id).where(Ticket.status.in_(statuses)))


class _Scratch(DeclarativeBase):
    pass


class _Stamped(_Scratch):
    __tablename__ = "stamped"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())


def test_a_default_computed_by_sql_must_be_given() -> None:
    with pytest.raises(ValueError, match="at: its default is computed by SQL"):
        row_params(_Stamped())
    assert row_params(_Stamped(at=START)) == {"row_at": START}


async def _in_transaction(session: Any) -> bool:
    raw = await (await session.connection()).get_raw_connection()
    return bool(raw.driver_connection.is_in_transaction())


async def test_a_write_request_reads_in_autocommit_and_writes_in_a_transaction(
    world: Database, postgres_only: None
) -> None:
    async with world.request_writes() as session:
        assert await session.scalar(select(Category.code).where(Category.code == "road_damage"))
        assert not await _in_transaction(session)  # a read is its statement alone
        session.add(_category("flushed"))
        await session.flush()
        assert await _in_transaction(session)  # begun before the flush's INSERT
        await _ADD_CATEGORY.rows(session, row_params(_category("direct")))
        await session.rollback()  # both undone
    async with world.request_writes() as session:
        await _ADD_CATEGORY.rows(session, row_params(_category("direct")))
        assert await _in_transaction(session)  # a write not marked `alone` begins one too
        await session.execute(text("SELECT 1"))
        await session.rollback()
    async with world.request_writes() as session:
        await session.scalar(select(1))
        async with session.begin_nested():  # a savepoint begins the transaction first
            session.add(_category("nested"))
        await session.commit()
    async with world.sessions() as session:
        assert await _CATEGORY_NAMED.first(session, {"code": "nested"}) is not None
        for code in ("flushed", "direct"):
            assert await _CATEGORY_NAMED.first(session, {"code": code}) is None


async def test_a_write_alone_is_committed_as_it_runs_and_must_be_the_last(
    world: Database, postgres_only: None
) -> None:
    async with world.request_writes() as session:
        await _ADD_CATEGORY.rows(session, row_params(_category("alone")), alone=True)
        assert not await _in_transaction(session)
        assert await session.scalar(select(Category.code).where(Category.code == "alone"))
        session.add(_category("after"))
        with pytest.raises(RuntimeError, match="last"):
            await session.flush()
        await session.rollback()
    async with world.sessions() as session:
        assert await _CATEGORY_NAMED.first(session, {"code": "alone"}) is not None
        assert await _CATEGORY_NAMED.first(session, {"code": "after"}) is None


async def test_a_connection_back_from_a_write_request_is_transactional_again(
    world: Database, postgres_only: None
) -> None:
    """The connection a write request held: the scheduler's sessions, which share the pool,
    run in transactions on it."""
    one = Database(world.url, pool_size=1)  # one pooled connection, taken again and again
    try:
        async with one.request_writes() as session:
            await session.scalar(select(1))
            raw = await (await session.connection()).get_raw_connection()
            held = raw.dbapi_connection
        async with one.sessions() as session:
            await session.scalar(select(1))
            raw = await (await session.connection()).get_raw_connection()
            assert raw.dbapi_connection is held
            assert raw.driver_connection.is_in_transaction()
    finally:
        await one.dispose()


async def test_a_large_statement_stays_prepared_on_its_connection(
    world: Database, postgres_only: None
) -> None:
    """A change with its rollups' upkeep is a statement of about 20 KiB: parsed and planned
    once per connection, not on every run (asyncpg's default keeps up to 15 KiB)."""
    large = DirectStatement(text(f"SELECT 1 AS one /* {'x' * 20_000} */"), reads=True)
    async with world.sessions() as session:
        for _ in range(2):
            assert [dict(row) for row in await large.rows(session, {})] == [{"one": 1}]
        kept = "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT 1 AS one%'"
        prepared = await session.scalar(text(kept))
        assert prepared == 1
