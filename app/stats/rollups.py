"""Closure rollups kept exact in the transaction of every ticket change.

A flush that changes a column a rollup row depends on (`measures.STORED_COLUMNS`) first takes
the ticket's stored contribution out of its row, as the database holds it before the change,
and after the flush adds the new one. Both are the same INSERT … SELECT over the ticket with
the same measures the statistics read directly, so the two paths cannot disagree. Rows are
written in key order, so concurrent changes wait on each other but never deadlock within a
flush. A rolled-back change (a stale version, a failed savepoint) takes its rollup writes
with it.
"""

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import (
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
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

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


def contribution(dialect: str, timezone: str, where: ColumnElement[bool], sign: int) -> Insert:
    """Adds (sign 1) or takes out (sign -1) the measures of the tickets matching `where`, to
    their month rows and their day rows, in key order."""
    values = [measure * sign for measure in measures.stored(dialect)]

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
            select(keys[0], constant_grain, *keys[1:], *values).where(where).group_by(*keys)
        )
    by_key: list[ColumnElement[Any]] = [
        literal_column(str(position)) for position in range(1, len(_KEY) + 1)
    ]
    query = union_all(*selects).order_by(*by_key)
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    insert = dialect_insert(ClosureRollup).from_select([*_KEY, *_ANCESTRY, *ROLLUP_MEASURES], query)
    table = ClosureRollup.__table__
    return insert.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={name: table.c[name] + insert.excluded[name] for name in ROLLUP_MEASURES},
    )


@lru_cache
def _contribution_of_tickets(dialect: str, timezone: str, sign: int) -> Insert:
    """`contribution` of the tickets whose ids are bound as `ids`, built once: building the
    statement costs more than running it."""
    return contribution(dialect, timezone, Ticket.id.in_(bindparam("ids", expanding=True)), sign)


def _moves_contribution(ticket: Ticket) -> bool:
    state = inspect(ticket)
    return any(state.attrs[name].history.has_changes() for name in measures.STORED_COLUMNS)


def _apply(session: Session, tickets: Sequence[Ticket], sign: int) -> None:
    connection = session.connection()
    timezone = session.info.get(TIMEZONE_KEY, DEFAULT_TIMEZONE)
    statement = _contribution_of_tickets(connection.dialect.name, timezone, sign)
    connection.execute(statement, {"ids": sorted(ticket.id for ticket in tickets)})


@event.listens_for(Session, "before_flush")
def _take_out(session: Session, _context: UOWTransaction, _instances: Any) -> None:
    changed = [t for t in session.dirty if isinstance(t, Ticket) and _moves_contribution(t)]
    removed = [t for t in session.deleted if isinstance(t, Ticket)]
    if changed or removed:
        _apply(session, changed + removed, -1)
    session.info[_PENDING_KEY] = changed + [t for t in session.new if isinstance(t, Ticket)]


@event.listens_for(Session, "after_flush")
def _put_back(session: Session, _context: UOWTransaction) -> None:
    if pending := session.info.pop(_PENDING_KEY, None):
        _apply(session, pending, 1)


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
    await session.execute(contribution(dialect, timezone, true(), 1))
    await session.execute(delete(ClosureRollupState))
    session.add(ClosureRollupState(id=1, timezone=timezone))
    await session.flush()
    return await session.scalar(select(func.count()).select_from(ClosureRollup)) or 0
