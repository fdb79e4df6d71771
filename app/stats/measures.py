"""The closure measures of API.md as SQL over tickets: one definition, read directly by the
statistics and summed into the rollups.

Each measure is an aggregate, so it counts one ticket or a whole group alike. The measures that
stay put until the ticket changes are `stored` (the rollups keep them); `overdue_open` moves
with the clock and is always counted from the tickets.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ColumnElement, and_, case, cast, func
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BinaryExpression, ColumnClause
from sqlalchemy.sql.operators import in_op, not_in_op

from app.stats.models import ROLLUP_MEASURES
from app.tickets import deadlines
from app.tickets.models import IS_ACCEPTED, IS_CLOSED, IS_OPEN, Ticket


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def _handling_seconds(dialect: str) -> ColumnElement[Any]:
    """closed_at − reported_at in whole seconds (of each timestamp), an integer on both
    databases so that sums are exact."""
    if dialect == "postgresql":
        seconds = func.extract("epoch", func.date_trunc("second", Ticket.closed_at)) - func.extract(
            "epoch", func.date_trunc("second", Ticket.reported_at)
        )
    else:
        seconds = func.strftime("%s", Ticket.closed_at) - func.strftime("%s", Ticket.reported_at)
    return cast(seconds, BigInteger)


def stored(dialect: str) -> list[ColumnElement[Any]]:
    """The measures in `ROLLUP_MEASURES` order."""
    measures = {
        "reported": func.count(),
        "accepted": _count(IS_ACCEPTED),
        "closed": _count(IS_CLOSED),
        "closed_on_time": _count(and_(IS_CLOSED, ~Ticket.overdue)),
        "self_resolved": _count(Ticket.self_resolved.is_(True)),
        "open": _count(IS_OPEN),
        "escalated": _count(Ticket.escalation_count > 0),
        "reworked": _count(and_(IS_ACCEPTED, Ticket.rework_count > 0)),
        "reopened": _count(and_(IS_ACCEPTED, Ticket.reopen_count > 0)),
        "resolved_in_community": _count(and_(IS_CLOSED, Ticket.escalation_count == 0)),
        "rated": _count(Ticket.rating.is_not(None)),
        "satisfied": _count(Ticket.rating >= 4),
        "handling_seconds": func.sum(case((IS_CLOSED, _handling_seconds(dialect)), else_=0)),
    }
    return [measures[name] for name in ROLLUP_MEASURES]


def overdue_open(now: datetime | ColumnElement[datetime]) -> ColumnElement[Any]:
    return _count(and_(IS_OPEN, deadlines.overdue_clause(True, now)))


def local_day(dialect: str, timezone: str, moment: Any = Ticket.reported_at) -> ColumnElement[str]:
    """The day (YYYY-MM-DD) in `timezone` of `moment` (when the ticket was reported); SQLite's
    `local_date` is registered by `app.db`."""
    if dialect == "postgresql":
        return func.to_char(func.timezone(timezone, moment), "YYYY-MM-DD")
    return func.local_date(moment, timezone)


def local_month(
    dialect: str, timezone: str, moment: Any = Ticket.reported_at
) -> ColumnElement[str]:
    if dialect == "postgresql":
        return func.to_char(func.timezone(timezone, moment), "YYYY-MM")
    return func.substr(func.local_date(moment, timezone), 1, 7)


def status_sets(statement: Any) -> list[frozenset[str]] | None:
    """The sets of statuses `statement` tests the ticket's status against (`status IN (...)`
    with literal statuses, as `status_among` writes them), or None if it reads the status in
    any other way."""

    def is_status(element: Any) -> bool:
        return (
            isinstance(element, Column)
            and element.table is Ticket.__table__
            and (element.key == "status")
        )

    sets, tests = [], 0
    for element in visitors.iterate(statement):
        if isinstance(element, BinaryExpression) and is_status(element.left):
            literals = [
                e.name.strip("'")
                for e in visitors.iterate(element.right)
                if isinstance(e, ColumnClause) and e.is_literal
            ]
            if element.operator not in (in_op, not_in_op) or not literals:
                return None
            sets.append(frozenset(literals))
        tests += is_status(element)
    return list(dict.fromkeys(sets)) if tests == len(sets) else None


def crosses(old: str, new: str | None, sets: list[frozenset[str]] | None) -> bool:
    """Whether a status change from `old` to `new` can move what SQL testing the status
    against `sets` (of `status_sets`) counts."""
    if old == new:
        return False
    return sets is None or any((old in statuses) != (new in statuses) for statuses in sets)
