"""Appraisal rollups kept exact in the transaction of every change, as the closure rollups are
(`stats.rollups`), and the facts that both they and a direct count sum.

A fact is one row saying what one thing counts for one party (a user, a grid, a department) in
the community and on the day its ticket was reported: a ticket counts as a report of its
reporter and, filed through Open311, as the public's report first in its grid; a history row of
a check or a verification counts for whoever answered; the first `return` of a ticket by a
department counts for that department; an assisting part counts for the department asked.
`facts` gives them as SQL over the tables: the appraisal counts them directly for a grid, the
rebuild sums them into rollup rows, and the flush hooks below add each changed row's facts as
they are now minus as they were, with the same SQL over the changed rows' values. Patrol days
(local days with a clock-in inside the worker's own grid) are kept alike in `patrol_days`.
"""

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Connection,
    FromClause,
    Insert,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    delete,
    event,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapper, Session, UOWTransaction, aliased, object_session
from sqlalchemy.sql.expression import CompoundSelect

from app.db import DEFAULT_TIMEZONE, TIMEZONE_KEY
from app.patrol.models import ClockIn
from app.stats import measures, upkeep
from app.stats.models import (
    APPRAISAL_MEASURES,
    AREA_ORDER,
    DAY,
    MONTH,
    AppraisalRollup,
    Party,
    PatrolDays,
)
from app.tickets.machine import NOT_ACCEPTED, Action
from app.tickets.models import Ticket, TicketAssist, TicketHistory, status_among

OPEN311 = "open311"
CHECKS = (Action.confirm, Action.refute)
_PENDING_KEY = "appraisal_rollups_pending"
_KEY = ("community_code", "grain", "period", "party", "code")
_ANCESTRY = ("town_code", "district_code")
_COLUMNS = (*_KEY, *_ANCESTRY, *APPRAISAL_MEASURES)
_PATROL_COLUMNS = ("grain", "period", "worker", "days")
# The columns of a history row its facts read (`history_facts`).
HISTORY_FACT_COLUMNS = ("id", "ticket_id", "actor", "action", "details")
# The ticket columns its own facts read, and those an assisting part's read.
TICKET_FACT_COLUMNS = (
    "community_code",
    "town_code",
    "district_code",
    "reported_at",
    "reporter",
    "source",
    "grid_code",
    "status",
)
ASSIST_FACT_COLUMNS = ("ticket_id", "department_code", "done_at")


def _sql(text: str) -> ColumnElement[Any]:
    return literal_column(text)


ONE = _sql("1")


def _one_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def _fact(
    ticket: Any, party: Party, code: Any, sign: ColumnElement[int], **counts: Any
) -> list[ColumnElement[Any]]:
    """A fact's columns: where and when its ticket was reported, whom it counts for, its sign
    and 0 or 1 for each measure."""
    return [
        ticket.community_code.label("community_code"),
        ticket.town_code.label("town_code"),
        ticket.district_code.label("district_code"),
        ticket.reported_at.label("reported_at"),
        _sql(f"'{party}'").label("party"),
        code.label("code"),
        sign.label("sign"),
        *(counts.get(name, _sql("0")).label(name) for name in APPRAISAL_MEASURES),
    ]


def ticket_facts(
    ticket: Any = Ticket, sign: ColumnElement[int] = ONE, where: ColumnElement[bool] = true()
) -> list[Select[Any]]:
    """A ticket's own facts; `ticket` is the model or a selectable with its columns' names."""
    accepted = _one_if(~status_among(NOT_ACCEPTED, ticket.status))
    reporter = _fact(ticket, Party.user, ticket.reporter, sign, reports=ONE, valid_reports=accepted)
    grid = _fact(ticket, Party.grid, ticket.grid_code, sign, public_first=accepted)
    return [
        select(*reporter).where(ticket.reporter.is_not(None), where),
        select(*grid).where(ticket.source == OPEN311, ticket.grid_code.is_not(None), where),
    ]


def history_facts(
    where: ColumnElement[bool] = true(), source: Any = TicketHistory
) -> list[Select[Any]]:
    """The facts of history rows: answered checks and verifications, first returns. `source`:
    the table, or a selectable of rows with its columns' names (a CTE inserting them)."""
    row = source.c if isinstance(source, FromClause) else source
    on_time = row.details["on_time"].as_boolean().is_(True)
    is_check = row.action.in_([_sql(f"'{action}'") for action in CHECKS])
    is_verify = row.action == _sql(f"'{Action.verify}'")
    answers = _fact(
        Ticket,
        Party.user,
        row.actor,
        ONE,
        checks=_one_if(is_check),
        checks_on_time=_one_if(and_(is_check, on_time)),
        verifications=_one_if(is_verify),
        verifications_on_time=_one_if(and_(is_verify, on_time)),
    )
    earlier = aliased(TicketHistory)
    is_return = row.action == _sql(f"'{Action.return_}'")
    department = row.details["department_code"].as_string()
    first_return = ~exists().where(
        earlier.ticket_id == row.ticket_id,
        earlier.action == _sql(f"'{Action.return_}'"),
        earlier.details["department_code"].as_string() == department,
        earlier.id < row.id,
    )
    returned = _fact(Ticket, Party.department, department, ONE, returned=ONE)
    return [
        select(*answers)
        .join_from(source, Ticket, Ticket.id == row.ticket_id)
        .where(or_(is_check, is_verify), where),
        select(*returned)
        .join_from(source, Ticket, Ticket.id == row.ticket_id)
        .where(is_return, department.is_not(None), first_return, where),
    ]


def assist_facts(
    part: Any = TicketAssist,
    source: Any = TicketAssist,
    sign: ColumnElement[int] = ONE,
    where: ColumnElement[bool] = true(),
) -> list[Select[Any]]:
    """The facts of assisting parts (`part`'s columns, read from `source`)."""
    counts = _fact(
        Ticket,
        Party.department,
        part.department_code,
        sign,
        assists=ONE,
        assists_done=_one_if(part.done_at.is_not(None)),
    )
    return [select(*counts).join_from(source, Ticket, Ticket.id == part.ticket_id).where(where)]


def facts(where: ColumnElement[bool] = true()) -> list[Select[Any]]:
    """Every fact of the tickets matching `where`."""
    return [*ticket_facts(where=where), *history_facts(where), *assist_facts(where=where)]


def rollup_rows(
    dialect: str, timezone: str, parts: list[Select[Any]], grains: Iterable[str] = (MONTH, DAY)
) -> CompoundSelect:
    """The signed sums of the facts by rollup row, in `_COLUMNS` order, leaving out rows
    whose measures do not move."""
    fact = union_all(*parts).subquery("facts")
    period_of = {MONTH: measures.local_month, DAY: measures.local_day}
    selects = []
    for grain in grains:
        period = period_of[grain](dialect, timezone, fact.c.reported_at)
        keys = [fact.c.community_code, period.label("period"), fact.c.party, fact.c.code]
        ancestry = [fact.c.town_code, fact.c.district_code]
        sums = [func.coalesce(func.sum(fact.c.sign * fact.c[m]), 0) for m in APPRAISAL_MEASURES]
        selects.append(
            select(keys[0], _sql(f"'{grain}'").label("grain"), *keys[1:], *ancestry, *sums)
            .group_by(*keys, *ancestry)
            .having(or_(*(total != 0 for total in sums)))
        )
    return union_all(*selects)


# Upkeep ------------------------------------------------------------------------------------


def _bound_rows(prefix: str, types: Mapping[str, Any], rows: int) -> FromClause:
    """`rows` rows of bound values named `<prefix><row>_<column>`, and a signed `sign`."""
    return union_all(
        *(
            select(
                *(
                    bindparam(f"{prefix}{row}_{column}", type_=kind).label(column)
                    for column, kind in types.items()
                ),
                bindparam(f"{prefix}{row}_sign", type_=Integer).label("sign"),
            )
            for row in range(rows)
        )
    ).cte(f"changed_{prefix}")


def _types(model: Any, names: Iterable[str]) -> dict[str, Any]:
    return {name: model.__table__.c[name].type for name in names}


@lru_cache(maxsize=64)
def delta_upsert(
    dialect: str, timezone: str, tickets: int = 0, histories: bool = False, assists: int = 0
) -> Insert:
    """Adds to the rollup rows, in key order (so that two changes never deadlock), the signed
    facts of `tickets` bound ticket values, of the history rows whose ids are bound as
    `history_ids`, and of `assists` bound assisting parts. Built once per shape."""
    parts: list[Select[Any]] = []
    if tickets:
        changed = _bound_rows("t", _types(Ticket, TICKET_FACT_COLUMNS), tickets)
        parts += ticket_facts(changed.c, changed.c.sign)
    if histories:
        parts += history_facts(TicketHistory.id.in_(bindparam("history_ids", expanding=True)))
    if assists:
        changed = _bound_rows("a", _types(TicketAssist, ASSIST_FACT_COLUMNS), assists)
        parts += assist_facts(changed.c, changed, changed.c.sign)
    return _adding(dialect, timezone, parts)


def moving_after(
    timezone: str, updated: FromClause, ticket_rows: int, history: FromClause | None
) -> CTE:
    """On PostgreSQL, what a ticket's change moves in the rollups, as a data-modifying CTE
    of the statement that writes it: its facts as they are now minus as they were
    (`ticket_rows` bound by `moving_params`, 0 when they do not move), counted only if
    `updated` (the ticket's UPDATE, as a CTE) has a row, and the facts of its history row
    (`history`, the CTE inserting it, returning its columns), if that counts."""
    parts: list[Select[Any]] = []
    if ticket_rows:
        changed = _bound_rows(_MOVING, _types(Ticket, TICKET_FACT_COLUMNS), ticket_rows)
        parts += ticket_facts(changed.c, changed.c.sign, select(updated).exists())
    if history is not None:
        parts += history_facts(source=history)
    one = literal_column("1", Integer)
    return _adding("postgresql", timezone, parts).returning(one).cte("appraisal_moved")


_MOVING = "moving_"  # the prefix of `moving_after`'s bound ticket values


def moving(ticket: Ticket) -> tuple[int, dict[str, Any]]:
    """For `moving_after`, a changed ticket's facts not yet flushed: how many signed rows move
    (none, or as they were out and as they are in) and their parameters."""
    rows = _ticket_facts_moved(ticket)
    return len(rows), _params(_MOVING, rows)


def counts_history(action: str) -> bool:
    """Whether a history row of `action` is a fact."""
    return action in _FACT_ACTIONS


def adding_facts(dialect: str, timezone: str, tickets: FromClause) -> Insert:
    """Adds the facts of the tickets in `tickets`, a selectable with their columns' names."""
    return _adding(dialect, timezone, ticket_facts(tickets.c))


def _adding(dialect: str, timezone: str, parts: list[Select[Any]]) -> Insert:
    rows = rollup_rows(dialect, timezone, parts).subquery()
    ordered = select(*rows.c).where(true()).order_by(*(rows.c[name] for name in _KEY))
    upsert = upkeep.adding_upsert(dialect, AppraisalRollup, _KEY, APPRAISAL_MEASURES)
    return upsert.from_select(list(_COLUMNS), ordered)


Signed = list[tuple[int, dict[str, Any]]]


def _replaced(old: dict[str, Any], new: dict[str, Any], same: bool) -> Signed:
    """A changed row's old facts out and its new ones in, unless they are the same."""
    return [] if same else [(-1, old), (1, new)]


# A ticket's facts read its status only as accepted or not.
_STATUS_SETS = measures.status_sets(union_all(*ticket_facts()))


def _facts_move(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return any(
        measures.crosses(old[name], new[name], _STATUS_SETS)
        if name == "status"
        else old[name] != new[name]
        for name in TICKET_FACT_COLUMNS
    )


@dataclass
class _Pending:
    """What a flush changed that counts, gathered row by row as the flush writes it."""

    tickets: Signed = field(default_factory=list)
    history_ids: list[int] = field(default_factory=list)
    assists: Signed = field(default_factory=list)
    clock_in_ids: list[int] = field(default_factory=list)


def _pending(target: Any) -> _Pending:
    session = object_session(target)
    assert session is not None
    pending: _Pending = session.info.setdefault(_PENDING_KEY, _Pending())
    return pending


@event.listens_for(Session, "before_flush")
def _start(session: Session, _context: UOWTransaction, _instances: Any) -> None:
    session.info[_PENDING_KEY] = _Pending()  # what a failed flush gathered is dropped


@event.listens_for(Ticket, "after_insert")
def _ticket_filed(_mapper: Mapper[Any], _connection: Connection, ticket: Ticket) -> None:
    _pending(ticket).tickets.append((1, upkeep.values_of(ticket, TICKET_FACT_COLUMNS)))


def _ticket_facts_moved(ticket: Ticket) -> Signed:
    """A changed ticket's facts as they were out and as they are now in, unless they are the
    same."""
    old = upkeep.values_of(ticket, TICKET_FACT_COLUMNS, before=True)
    new = upkeep.values_of(ticket, TICKET_FACT_COLUMNS)
    return _replaced(old, new, not _facts_move(old, new))


@event.listens_for(Ticket, "after_update")
def _ticket_changed(_mapper: Mapper[Any], _connection: Connection, ticket: Ticket) -> None:
    _pending(ticket).tickets.extend(_ticket_facts_moved(ticket))


# The history rows that are facts (`history_facts`).
_FACT_ACTIONS = frozenset({*CHECKS, Action.verify, Action.return_})


@event.listens_for(TicketHistory, "after_insert")
def _history_added(_mapper: Mapper[Any], _connection: Connection, row: TicketHistory) -> None:
    if counts_history(row.action):
        _pending(row).history_ids.append(row.id)


@event.listens_for(TicketAssist, "after_insert")
def _assist_asked(_mapper: Mapper[Any], _connection: Connection, part: TicketAssist) -> None:
    _pending(part).assists.append((1, upkeep.values_of(part, ASSIST_FACT_COLUMNS)))


@event.listens_for(TicketAssist, "after_update")
def _assist_changed(_mapper: Mapper[Any], _connection: Connection, part: TicketAssist) -> None:
    old = upkeep.values_of(part, ASSIST_FACT_COLUMNS, before=True)
    new = upkeep.values_of(part, ASSIST_FACT_COLUMNS)
    _pending(part).assists.extend(_replaced(old, new, old == new))


@event.listens_for(TicketAssist, "after_delete")
def _assist_dropped(_mapper: Mapper[Any], _connection: Connection, part: TicketAssist) -> None:
    _pending(part).assists.append((-1, upkeep.values_of(part, ASSIST_FACT_COLUMNS, before=True)))


@event.listens_for(ClockIn, "after_insert")
def _clocked_in(_mapper: Mapper[Any], _connection: Connection, clock_in: ClockIn) -> None:
    if clock_in.inside_grid:
        _pending(clock_in).clock_in_ids.append(clock_in.id)


def _params(prefix: str, rows: Signed) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for row, (sign, values) in enumerate(rows):
        params[f"{prefix}{row}_sign"] = sign
        params.update({f"{prefix}{row}_{name}": value for name, value in values.items()})
    return params


# Bound rows of each kind per statement at most: SQLite takes at most 500 terms in a compound
# SELECT. A bigger flush adds its rows chunk by chunk.
_CHUNK = 100


def delta_statements(
    dialect: str, timezone: str, pending: _Pending
) -> Iterator[tuple[Insert, dict[str, Any]]]:
    """The delta upserts of what a flush (or a filing) changed, with their parameters."""
    tickets, assists, history_ids = pending.tickets, pending.assists, pending.history_ids
    while tickets or assists or history_ids:
        ticket_chunk, tickets = tickets[:_CHUNK], tickets[_CHUNK:]
        assist_chunk, assists = assists[:_CHUNK], assists[_CHUNK:]
        params = {**_params("t", ticket_chunk), **_params("a", assist_chunk)}
        if history_ids:
            params["history_ids"], history_ids = history_ids, []
        shape = (len(ticket_chunk), "history_ids" in params, len(assist_chunk))
        yield delta_upsert(dialect, timezone, *shape), params


@lru_cache(maxsize=4)
def _new_patrol_days(dialect: str, timezone: str) -> Insert:
    """Day rows for the bound clock-ins' days not counted yet, returning the new ones."""
    day = measures.local_day(dialect, timezone, ClockIn.at)
    days = (
        select(_sql(f"'{DAY}'"), day, ClockIn.worker, ONE)
        .where(ClockIn.id.in_(bindparam("clock_in_ids", expanding=True)), ClockIn.inside_grid)
        .group_by(ClockIn.worker, day)
        .order_by(day, ClockIn.worker)
    )
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    insert = dialect_insert(PatrolDays).from_select(_PATROL_COLUMNS, days)
    return insert.on_conflict_do_nothing().returning(PatrolDays.worker, PatrolDays.period)


@lru_cache(maxsize=2)
def _count_patrol_month(dialect: str) -> Insert:
    upsert = upkeep.adding_upsert(dialect, PatrolDays, _PATROL_COLUMNS[:3], ("days",))
    return upsert.values(
        worker=bindparam("worker"), grain=MONTH, period=bindparam("period"), days=1
    )


def _count_patrol_days(connection: Connection, timezone: str, clock_in_ids: list[int]) -> None:
    dialect = connection.dialect.name
    new_days = connection.execute(
        _new_patrol_days(dialect, timezone), {"clock_in_ids": clock_in_ids}
    ).all()
    for worker, day in new_days:
        connection.execute(_count_patrol_month(dialect), {"worker": worker, "period": day[:7]})


@event.listens_for(Session, "after_flush")
def _count_changes(session: Session, _context: UOWTransaction) -> None:
    pending: _Pending | None = session.info.pop(_PENDING_KEY, None)
    if pending is None:
        return
    connection = session.connection()
    timezone = session.info.get(TIMEZONE_KEY, DEFAULT_TIMEZONE)
    for statement, params in delta_statements(connection.dialect.name, timezone, pending):
        connection.execute(statement, params)
    if pending.clock_in_ids:
        _count_patrol_days(connection, timezone, pending.clock_in_ids)


async def count_filed(session: AsyncSession, ticket: Mapping[str, Any]) -> None:
    """Adds a ticket filed without the ORM (the flush hooks count the others)."""
    timezone = session.info.get(TIMEZONE_KEY, DEFAULT_TIMEZONE)
    dialect = session.get_bind().dialect.name
    values = {name: ticket[name] for name in TICKET_FACT_COLUMNS}
    for statement, params in delta_statements(dialect, timezone, _Pending(tickets=[(1, values)])):
        await upkeep.direct(statement).rows(session, params)


# Rebuild -----------------------------------------------------------------------------------


async def rebuild(session: AsyncSession, timezone: str) -> None:
    """Recomputes the appraisal rollups and patrol days (inside `stats.rollups.rebuild`, whose
    lock keeps ticket changes waiting): day rows from the facts, month rows from the days."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        await session.execute(text("LOCK TABLE appraisal_rollups, patrol_days IN EXCLUSIVE MODE"))
    await session.execute(delete(AppraisalRollup))
    await session.execute(delete(PatrolDays))
    days = rollup_rows(dialect, timezone, facts(), grains=(DAY,)).subquery()
    ordered = select(*days.c).order_by(*(days.c[name] for name in AREA_ORDER))
    await session.execute(insert(AppraisalRollup).from_select(list(_COLUMNS), ordered))
    await session.execute(_months_of(AppraisalRollup, _COLUMNS, APPRAISAL_MEASURES, AREA_ORDER))
    day = measures.local_day(dialect, timezone, ClockIn.at)
    patrol = (
        select(_sql(f"'{DAY}'"), day, ClockIn.worker, ONE)
        .where(ClockIn.inside_grid)
        .group_by(ClockIn.worker, day)
        .order_by(day, ClockIn.worker)
    )
    await session.execute(insert(PatrolDays).from_select(_PATROL_COLUMNS, patrol))
    await session.execute(_months_of(PatrolDays, _PATROL_COLUMNS, ("days",), ("period", "worker")))


def _months_of(
    model: Any, columns: Sequence[str], counts: Collection[str], order: Sequence[str]
) -> Insert:
    """Inserts the month rows summing a rollup table's day rows, in `order`."""
    month = func.substr(model.period, 1, 7)

    def column(name: str) -> ColumnElement[Any]:
        if name in counts:
            return func.sum(getattr(model, name))
        return {"grain": _sql(f"'{MONTH}'"), "period": month}.get(name, getattr(model, name))

    keys = [column(name) for name in columns if name not in counts and name != "grain"]
    months = (
        select(*(column(name) for name in columns))
        .where(model.grain == DAY)
        .group_by(*keys)
        .order_by(*(column(name) for name in order if name != "grain"))
    )
    return insert(model).from_select(list(columns), months)
