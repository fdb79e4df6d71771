"""Closure rollups kept exact in the transaction of every ticket change.

After a flush that files a ticket or changes a column a rollup row depends on (`_DEPENDS_ON`),
one statement adds to the rollup rows the ticket's contribution as it is now, minus its
contribution as it was, both computed by the measures the statistics read directly (over the
ticket's values, which the session knows) so the two paths cannot disagree. The old values are
the ones the database held: the UPDATE that just passed checked the ticket's version. A
rolled-back change (a stale version, a failed savepoint) takes its rollup writes with it. A
ticket filed without the ORM (a patrol report) is counted by the statement that files it on
PostgreSQL (`counting_filed`), and by `count_filed` on SQLite, with the same measures.
"""

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    CTE,
    Column,
    ColumnElement,
    FromClause,
    Insert,
    Integer,
    bindparam,
    delete,
    event,
    func,
    inspect,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction
from sqlalchemy.sql import visitors
from sqlalchemy.sql.expression import CompoundSelect
from sqlalchemy.sql.util import ClauseAdapter

from app import reference
from app.db import DEFAULT_TIMEZONE, TIMEZONE_KEY
from app.stats import appraisal_rollups, measures, upkeep
from app.stats.models import (
    AREA_ORDER,
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


def contributions(
    dialect: str, timezone: str, where: ColumnElement[bool], *by: ColumnElement[Any]
) -> CompoundSelect:
    """The measures of the tickets matching `where` by rollup row (and by `by`), month rows
    and day rows, in the order of `_COLUMNS` (`by` after the key and ancestry)."""
    selects = []
    for grain, period in (
        (MONTH, measures.local_month(dialect, timezone)),
        (DAY, measures.local_day(dialect, timezone)),
    ):
        keys = [
            Ticket.community_code,
            period.label("period"),
            Ticket.category_code,
            func.coalesce(Ticket.department_code, NO_DEPARTMENT).label("department"),
            Ticket.town_code,
            Ticket.district_code,
            *by,
        ]
        constant_grain: ColumnElement[str] = literal_column(f"'{grain}'").label("grain")
        stored = measures.stored(dialect)
        selects.append(
            select(
                keys[0],
                constant_grain,
                *keys[1:],
                *(
                    measure.label(f"measure_{name}")  # not named like a ticket column: see
                    for measure, name in zip(stored, ROLLUP_MEASURES, strict=True)  # below
                ),
            )
            .where(where)
            .group_by(*keys)
        )
    return union_all(*selects)


@lru_cache
def _upsert(dialect: str) -> Insert:
    """Adds the bound measures to their rows (creating them)."""
    return upkeep.adding_upsert(dialect, ClosureRollup, _KEY, ROLLUP_MEASURES)


# The ticket columns a rollup row depends on: every one its key or its measures read.
_DEPENDS_ON = tuple(
    sorted(
        {
            element.key
            for element in visitors.iterate(contributions("postgresql", DEFAULT_TIMEZONE, true()))
            if isinstance(element, Column) and element.table is Ticket.__table__
        }
    )
)


def _ticket_values(rows: int, only_if: FromClause | None = None) -> FromClause:
    """`rows` tickets' `_DEPENDS_ON` values and a `sign` each, bound as `t<row>_<column>`
    (none unless `only_if` has a row, when given)."""
    columns = Ticket.__table__.c
    selects = [
        select(
            *(
                bindparam(f"t{row}_{name}", type_=columns[name].type).label(name)
                for name in _DEPENDS_ON
            ),
            bindparam(f"t{row}_sign", type_=Integer).label("sign"),
        )
        for row in range(rows)
    ]
    if only_if is not None:
        selects = [s.where(select(only_if).exists()) for s in selects]
    return union_all(*selects).cte("changed_tickets")


# Ticket values per statement at most (a flush of the service carries one or two): SQLite
# takes at most 500 terms in a compound SELECT. A bigger flush locks its rollup rows in key
# order chunk by chunk.
_CHUNK = 100


@lru_cache(maxsize=_CHUNK)
def _delta_upsert(dialect: str, timezone: str, rows: int) -> Insert:
    """Adds to each rollup row the signed contributions of `rows` bound ticket values, in key
    order (two changes moving tickets between the same rows in opposite directions wait for
    each other, never deadlock), leaving alone the rows whose measures do not move. Built once
    per number of rows: building it costs more than running it."""
    changed = _ticket_values(rows)
    return _adding(dialect, timezone, changed, changed.c.sign)


def _adding(dialect: str, timezone: str, changed: FromClause, sign: ColumnElement[int]) -> Insert:
    """The upsert adding the `sign`ed contributions of the tickets in `changed` (any
    selectable with the tickets' columns' names)."""
    # Every ticket column, and any label named like one, becomes the changed rows' column.
    by_sign = (
        ClauseAdapter(changed, adapt_on_names=True)
        .traverse(contributions(dialect, timezone, true(), sign))
        .subquery()
    )
    columns = list(by_sign.c)
    width = len(_KEY) + len(_ANCESTRY)
    keys, sign, counts = columns[:width], columns[width], columns[width + 1 :]
    deltas = [func.coalesce(func.sum(sign * count), 0) for count in counts]
    moving = (
        select(*keys, *deltas)
        .where(true())  # SQLite reads an upsert's SELECT unambiguously only with a WHERE
        .group_by(*keys)
        .having(or_(*(delta != 0 for delta in deltas)))
        .order_by(*keys)
    )
    return _upsert(dialect).from_select(list(_COLUMNS), moving)


# A status change moves a ticket's contribution only when it crosses one of these sets (from
# `reported` to `dispatched`, `in_progress` or `feedback` it stays open and accepted).
_STATUS_SETS = measures.status_sets(contributions("postgresql", DEFAULT_TIMEZONE, true()))


def moves(ticket: Ticket) -> bool:
    """Whether a flush of the changed ticket would move its contribution to the rollups."""
    state = inspect(ticket)
    for name in _DEPENDS_ON:
        history = state.attrs[name].history
        if not history.has_changes():
            continue
        if name != "status" or _STATUS_SETS is None or not history.deleted:
            return True
        new = history.added[0] if history.added else None
        if measures.crosses(history.deleted[0], new, _STATUS_SETS):
            return True
    return False


@event.listens_for(Session, "before_flush")
def _take_old_values(session: Session, _context: UOWTransaction, _instances: Any) -> None:
    """Notes, before the flush runs, what the changed tickets count for as stored."""
    changed = [t for t in session.dirty if isinstance(t, Ticket) and moves(t)]
    removed = [t for t in session.deleted if isinstance(t, Ticket)]
    old = [upkeep.values_of(ticket, _DEPENDS_ON, before=True) for ticket in changed + removed]
    added = changed + [t for t in session.new if isinstance(t, Ticket)]
    session.info[_PENDING_KEY] = (old, added)


def _signed_batches(
    dialect: str, timezone: str, signed: list[tuple[int, dict[str, Any]]]
) -> Iterator[tuple[Insert, dict[str, Any]]]:
    """The delta upserts for (sign, ticket values) pairs, with their parameters."""
    for first in range(0, len(signed), _CHUNK):
        chunk = signed[first : first + _CHUNK]
        yield _delta_upsert(dialect, timezone, len(chunk)), _signed_params(chunk)


def _signed_params(signed: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    params = {}
    for row, (sign, values) in enumerate(signed):
        params[f"t{row}_sign"] = sign
        params.update({f"t{row}_{name}": values[name] for name in _DEPENDS_ON})
    return params


def moving_after(timezone: str, changed: FromClause) -> CTE:
    """On PostgreSQL, what a changed ticket adds to the rollups (its contribution now minus as
    stored, bound by `moving_params`), as a data-modifying CTE that writes only if `changed`
    (the ticket's UPDATE, as a CTE) has a row."""
    values = _ticket_values(2, only_if=changed)
    one = literal_column("1", Integer)
    return _adding("postgresql", timezone, values, values.c.sign).returning(one).cte("moved")


def moving_params(ticket: Ticket) -> dict[str, Any]:
    """The parameters of `moving_after` for a changed ticket not yet flushed."""
    old = upkeep.values_of(ticket, _DEPENDS_ON, before=True)
    return _signed_params([(-1, old), (1, upkeep.values_of(ticket, _DEPENDS_ON))])


@event.listens_for(Session, "after_flush")
def _count_changes(session: Session, _context: UOWTransaction) -> None:
    """Adds the flushed tickets' contributions as they are now, minus as they were."""
    old, added = session.info.pop(_PENDING_KEY, ([], []))
    signed = [(-1, values) for values in old] + [
        (1, upkeep.values_of(ticket, _DEPENDS_ON)) for ticket in added
    ]
    if not signed:
        return
    connection = session.connection()
    timezone = session.info.get(TIMEZONE_KEY, DEFAULT_TIMEZONE)
    for statement, params in _signed_batches(connection.dialect.name, timezone, signed):
        connection.execute(statement, params)


def counting_filed(timezone: str, filed: FromClause) -> list[CTE]:
    """On PostgreSQL, what the tickets just inserted as `filed` (a CTE returning their
    columns) add to both rollups, as data-modifying CTEs of the statement that files them."""
    one = literal_column("1", Integer)
    closure = _adding("postgresql", timezone, filed, one.label("sign")).returning(one)
    appraisal = appraisal_rollups.adding_facts("postgresql", timezone, filed).returning(one)
    return [closure.cte("closure_counted"), appraisal.cte("appraisal_counted")]


async def count_filed(session: AsyncSession, ticket: Mapping[str, Any]) -> None:
    """Adds a ticket filed without the ORM to the closure and appraisal rollups, on SQLite
    (on PostgreSQL the statement that files it does, with `counting_filed`)."""
    timezone = session.info.get(TIMEZONE_KEY, DEFAULT_TIMEZONE)
    dialect = session.get_bind().dialect.name
    for statement, params in _signed_batches(dialect, timezone, [(1, dict(ticket))]):
        await upkeep.direct(statement).rows(session, params)
    await appraisal_rollups.count_filed(session, ticket)


async def built_for(session: AsyncSession, timezone: str) -> bool:
    """Whether the rollups count months of `timezone`."""
    return (await reference.current(session)).rollups_timezone == timezone


async def rebuild(session: AsyncSession, timezone: str) -> int:
    """Recomputes every rollup row from the tickets, in months of `timezone`, and the
    appraisal rollups with them; returns the number of closure rollup rows. Ticket changes
    wait for it (the tables are locked) and land after it."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        await session.execute(text("LOCK TABLE closure_rollups IN EXCLUSIVE MODE"))
    await session.execute(delete(ClosureRollup))
    everything = contributions(dialect, timezone, true()).subquery()
    in_area_order = select(*everything.c).order_by(*(everything.c[name] for name in AREA_ORDER))
    await session.execute(_upsert(dialect).from_select(list(_COLUMNS), in_area_order))
    await appraisal_rollups.rebuild(session, timezone)
    await session.execute(delete(ClosureRollupState))
    session.add(ClosureRollupState(id=1, timezone=timezone))
    await session.flush()
    return await session.scalar(select(func.count()).select_from(ClosureRollup)) or 0
