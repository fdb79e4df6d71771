"""Closure rollups kept exact in the transaction of every ticket change.

After a flush that files a ticket or changes a column a rollup row depends on (`_DEPENDS_ON`),
one statement adds to the rollup rows the ticket's contribution as it is now, minus its
contribution as it was, and a second adds what moved to the communities' sums
(`CommunityClosureRollup`, written after the rows so that every change locks rows in one
order). Both contributions are computed by the measures the statistics read directly (over
the ticket's values, which the session knows) so the two paths cannot disagree. The old values are
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
    Select,
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
    CommunityClosureRollup,
)
from app.tickets.models import Ticket

_PENDING_KEY = "closure_rollups_pending"

_KEY = ("community_code", "grain", "period", "category_code", "department_code")
_ANCESTRY = ("town_code", "district_code")
_COLUMNS = (*_KEY, *_ANCESTRY, *ROLLUP_MEASURES)  # of a rollup row, as `contributions` gives them
_COMMUNITY_KEY = ("community_code", "grain", "period")
_COMMUNITY_COLUMNS = (*_COMMUNITY_KEY, *_ANCESTRY, *ROLLUP_MEASURES)


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
def _upsert(dialect: str, table: type[ClosureRollup] | type[CommunityClosureRollup]) -> Insert:
    """Adds the selected measures to their rows of `table` (creating them)."""
    key = [column.name for column in table.__table__.primary_key]
    return upkeep.adding_upsert(dialect, table, key, ROLLUP_MEASURES)


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
def _delta_upserts(dialect: str, timezone: str, rows: int) -> tuple[Insert, Insert]:
    """The upserts adding the signed contributions of `rows` bound ticket values to the
    rollup rows, then to their communities' sums. Built once per number of rows: building
    them costs more than running them."""
    changed = _ticket_values(rows)
    moving = _moving(dialect, timezone, changed, changed.c.sign)
    rows_moved = _upsert(dialect, ClosureRollup).from_select(list(_COLUMNS), moving)
    return rows_moved, _to_communities(dialect, moving.subquery())


def _moving(dialect: str, timezone: str, changed: FromClause, sign: ColumnElement[int]) -> Select:
    """The `sign`ed contributions of the tickets in `changed` (any selectable with the
    tickets' columns' names) summed by rollup row, in the order and with the names of
    `_COLUMNS`, leaving out the rows whose measures do not move. In key order: two changes
    moving tickets between the same rows in opposite directions wait for each other, never
    deadlock."""
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
    return (
        select(*_named(keys + deltas, _COLUMNS))
        .where(true())  # SQLite reads an upsert's SELECT unambiguously only with a WHERE
        .group_by(*keys)
        .having(or_(*(delta != 0 for delta in deltas)))
        .order_by(*keys)
    )


def _named(columns: list[Any], names: tuple[str, ...]) -> list[ColumnElement[Any]]:
    return [column.label(name) for column, name in zip(columns, names, strict=True)]


def _community_sums(rows: FromClause) -> Select:
    """The sums of rollup rows (`rows`, named as `_COLUMNS`) by community and period, named as
    `_COMMUNITY_COLUMNS`."""
    keys = [rows.c[name] for name in (*_COMMUNITY_KEY, *_ANCESTRY)]
    sums = [func.sum(rows.c[name]) for name in ROLLUP_MEASURES]
    return (
        select(*_named(keys + sums, _COMMUNITY_COLUMNS))
        .where(true())  # as in `_moving`
        .group_by(*keys)
        .having(or_(*(total != 0 for total in sums)))
    )


def _to_communities(dialect: str, moving: FromClause, after: FromClause | None = None) -> Insert:
    """The upsert adding what `moving` moves to its communities' sums, in key order; only once
    every row of `after` has been written, when given (as CTEs of one statement, the rows are
    then always locked before the sums)."""
    sums = _community_sums(moving)
    if after is not None:
        sums = sums.where(select(func.count()).select_from(after).scalar_subquery() >= 0)
    in_key_order = sums.order_by(*(moving.c[name] for name in _COMMUNITY_KEY))
    return _upsert(dialect, CommunityClosureRollup).from_select(
        list(_COMMUNITY_COLUMNS), in_key_order
    )


def _adding_ctes(
    timezone: str, changed: FromClause, sign: ColumnElement[int], name: str
) -> list[CTE]:
    """On PostgreSQL, the upserts adding the `sign`ed contributions of the tickets in `changed`
    to the rollup rows and to their communities' sums, as data-modifying CTEs named after
    `name`."""
    moving = _moving("postgresql", timezone, changed, sign).cte(f"{name}_moving")
    one = literal_column("1", Integer)
    in_key_order = select(*moving.c).order_by(*(moving.c[key] for key in _KEY))
    rows_moved = _upsert("postgresql", ClosureRollup).from_select(list(_COLUMNS), in_key_order)
    rows_cte = rows_moved.returning(one).cte(name)
    sums_moved = _to_communities("postgresql", moving, after=rows_cte).returning(one)
    return [rows_cte, sums_moved.cte(f"{name}_communities")]


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
        params = _signed_params(chunk)
        for statement in _delta_upserts(dialect, timezone, len(chunk)):
            yield statement, params


def _signed_params(signed: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    params = {}
    for row, (sign, values) in enumerate(signed):
        params[f"t{row}_sign"] = sign
        params.update({f"t{row}_{name}": values[name] for name in _DEPENDS_ON})
    return params


def moving_after(timezone: str, changed: FromClause) -> list[CTE]:
    """On PostgreSQL, what a changed ticket adds to the rollups (its contribution now minus as
    stored, bound by `moving_params`), as data-modifying CTEs that write only if `changed`
    (the ticket's UPDATE, as a CTE) has a row."""
    values = _ticket_values(2, only_if=changed)
    return _adding_ctes(timezone, values, values.c.sign, "moved")


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
    closure = _adding_ctes(timezone, filed, one.label("sign"), "closure_counted")
    appraisal = appraisal_rollups.adding_facts("postgresql", timezone, filed).returning(one)
    return [*closure, appraisal.cte("appraisal_counted")]


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
        tables = "closure_rollups, community_closure_rollups"
        await session.execute(text(f"LOCK TABLE {tables} IN EXCLUSIVE MODE"))
    await session.execute(delete(ClosureRollup))
    await session.execute(delete(CommunityClosureRollup))
    everything = contributions(dialect, timezone, true()).subquery()
    in_area_order = select(*everything.c).order_by(*(everything.c[name] for name in AREA_ORDER))
    await session.execute(
        _upsert(dialect, ClosureRollup).from_select(list(_COLUMNS), in_area_order)
    )
    sums = _community_sums(ClosureRollup.__table__)
    in_area_order = sums.order_by(*(ClosureRollup.__table__.c[name] for name in AREA_ORDER))
    summed = _upsert(dialect, CommunityClosureRollup)
    await session.execute(summed.from_select(list(_COMMUNITY_COLUMNS), in_area_order))
    await appraisal_rollups.rebuild(session, timezone)
    await session.execute(delete(ClosureRollupState))
    session.add(ClosureRollupState(id=1, timezone=timezone))
    await session.flush()
    return await session.scalar(select(func.count()).select_from(ClosureRollup)) or 0
