"""Closure rollups kept exact in the transaction of every ticket change.

A flush that changes a column a rollup row depends on (`_DEPENDS_ON`) reads the
ticket's contribution before the UPDATE, as the database holds it, and again after; the
difference is added to the rollup rows in the same transaction. Both reads are the measures
the statistics read directly, so the two paths cannot disagree. A rolled-back change (a stale
version, a failed savepoint) takes its rollup writes with it.
"""

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Insert,
    bindparam,
    delete,
    event,
    func,
    inspect,
    literal_column,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.sql import visitors
from sqlalchemy.sql.expression import BindParameter, CompoundSelect

from app.db import DEFAULT_TIMEZONE, TIMEZONE_KEY
from app.stats import measures
from app.stats.models import (
    DAY,
    MONTH,
    NO_DEPARTMENT,
    ROLLUP_MEASURES,
    ClosureRollup,
    ClosureRollupState,
)
from app.tickets.models import Ticket

_PENDING_KEY = "closure_rollups_pending"
_KEY = ("community_code", "grain", "period", "category_code", "department_code")
_ANCESTRY = ("town_code", "district_code")
_COLUMNS = (*_KEY, *_ANCESTRY, *ROLLUP_MEASURES)  # of a rollup row, as `contributions` gives them


def contributions(dialect: str, timezone: str, where: ColumnElement[bool]) -> CompoundSelect:
    """The measures of the tickets matching `where` by rollup row, month rows and day rows,
    in the order of `_COLUMNS`."""
    selects = []
    for grain, period in (
        (MONTH, measures.local_month(dialect, timezone)),
        (DAY, measures.local_day(dialect, timezone)),
    ):
        keys = [
            Ticket.community_code,
            period,
            Ticket.category_code,
            func.coalesce(Ticket.department_code, NO_DEPARTMENT),
            Ticket.town_code,
            Ticket.district_code,
        ]
        constant_grain: ColumnElement[str] = literal_column(f"'{grain}'")
        selects.append(
            select(keys[0], constant_grain, *keys[1:], *measures.stored(dialect))
            .where(where)
            .group_by(*keys)
        )
    return union_all(*selects)


@lru_cache
def _upsert(dialect: str) -> Insert:
    """Adds the bound measures to their rows (creating them)."""
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    insert = dialect_insert(ClosureRollup)
    table = ClosureRollup.__table__
    return insert.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={name: table.c[name] + insert.excluded[name] for name in ROLLUP_MEASURES},
    )


@lru_cache
def _statements(dialect: str, timezone: str) -> tuple[CompoundSelect, CompoundSelect]:
    """Built once (building them costs more than running them): the contributions of the
    tickets bound as `ids`, locking the tickets first; the same without locking."""
    ids: BindParameter[Any] = bindparam("ids", expanding=True)
    locked = (
        select(Ticket.id).where(Ticket.id.in_(ids)).order_by(Ticket.id).with_for_update()
    ).correlate(None)
    return (
        contributions(dialect, timezone, Ticket.id.in_(locked)),
        contributions(dialect, timezone, Ticket.id.in_(ids)),
    )


# The ticket columns a rollup row depends on: every one its key or its measures read.
_DEPENDS_ON = frozenset(
    element.key
    for element in visitors.iterate(contributions("postgresql", DEFAULT_TIMEZONE, true()))
    if isinstance(element, Column) and element.table is Ticket.__table__
)


def _moves_contribution(ticket: Ticket) -> bool:
    state = inspect(ticket)
    return any(state.attrs[name].history.has_changes() for name in _DEPENDS_ON)


def _contributions_of(session: Session, tickets: Sequence[Ticket], lock: bool) -> list[Row[Any]]:
    connection = session.connection()
    timezone = session.info.get(TIMEZONE_KEY, DEFAULT_TIMEZONE)
    locking, plain = _statements(connection.dialect.name, timezone)
    ids = sorted(ticket.id for ticket in tickets)
    return list(connection.execute(locking if lock else plain, {"ids": ids}))


@event.listens_for(Session, "before_flush")
def _take_out(session: Session, _context: UOWTransaction, _instances: Any) -> None:
    """Reads what the changed tickets count for now, as the database holds them; their rows
    are locked first, so that rollup rows are only ever locked after the tickets."""
    changed = [t for t in session.dirty if isinstance(t, Ticket) and _moves_contribution(t)]
    removed = [t for t in session.deleted if isinstance(t, Ticket)]
    old = _contributions_of(session, changed + removed, lock=True) if changed or removed else []
    added = changed + [t for t in session.new if isinstance(t, Ticket)]
    session.info[_PENDING_KEY] = (old, added)


@event.listens_for(Session, "after_flush")
def _put_back(session: Session, _context: UOWTransaction) -> None:
    """Writes new minus old contributions in one statement, in key order: two changes moving
    tickets between the same rows in opposite directions wait for each other, never deadlock."""
    old, added = session.info.pop(_PENDING_KEY, ([], []))
    new = _contributions_of(session, added, lock=False) if added else []
    deltas: dict[tuple[Any, ...], list[Any]] = {}
    width = len(_KEY) + len(_ANCESTRY)
    for rows, sign in ((old, -1), (new, 1)):
        for row in rows:
            key, counts = tuple(row[:width]), row[width:]
            total = deltas.setdefault(key, [0] * len(ROLLUP_MEASURES))
            for position, count in enumerate(counts):
                total[position] += sign * int(count or 0)
    changes = [
        dict(zip(_COLUMNS, (*key, *counts), strict=True))
        for key, counts in sorted(deltas.items())
        if any(counts)
    ]
    if changes:
        connection = session.connection()
        connection.execute(_upsert(connection.dialect.name), changes)


async def built_for(session: AsyncSession, timezone: str) -> bool:
    """Whether the rollups count months of `timezone`."""
    built = await session.scalar(select(ClosureRollupState.timezone))
    return built == timezone


async def rebuild(session: AsyncSession, timezone: str) -> int:
    """Recomputes every rollup row from the tickets, in months of `timezone`; returns the
    number of rows. Ticket changes wait for it (the table is locked) and land after it."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        await session.execute(text("LOCK TABLE closure_rollups IN EXCLUSIVE MODE"))
    await session.execute(delete(ClosureRollup))
    everything = contributions(dialect, timezone, true())
    await session.execute(_upsert(dialect).from_select(list(_COLUMNS), everything))
    await session.execute(delete(ClosureRollupState))
    session.add(ClosureRollupState(id=1, timezone=timezone))
    await session.flush()
    return await session.scalar(select(func.count()).select_from(ClosureRollup)) or 0
