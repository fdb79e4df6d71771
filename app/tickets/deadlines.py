"""The deadline of a ticket: starting, pausing, moving it, and reading its warning colour.

Each rule exists twice, for a loaded ticket and as SQL for list filters; they sit side by side
here so they cannot drift apart.
"""

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, or_

from app.tickets.machine import DEADLINE_RUNNING
from app.tickets.models import Ticket
from app.timing.limits import TimeLimit, add_limit, warning_threshold


class WarningLevel(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


def start_deadline(ticket: Ticket, start: datetime, limit: TimeLimit) -> None:
    due = add_limit(start, limit)
    ticket.deadline_started_at = start
    ticket.deadline_at = due
    ticket.warning_at = warning_threshold(start, due)


def shift_deadline(ticket: Ticket, delta: timedelta) -> None:
    """Moves the running deadline (and its start and warning point) by a paused span."""
    if ticket.deadline_at is None or ticket.deadline_started_at is None:
        return
    ticket.deadline_started_at += delta
    ticket.deadline_at += delta
    ticket.warning_at = warning_threshold(ticket.deadline_started_at, ticket.deadline_at)


def extend_deadline(ticket: Ticket, extension: TimeLimit) -> None:
    assert ticket.deadline_at is not None and ticket.deadline_started_at is not None
    ticket.deadline_at = add_limit(ticket.deadline_at, extension)
    ticket.warning_at = warning_threshold(ticket.deadline_started_at, ticket.deadline_at)


def is_running(ticket: Ticket) -> bool:
    return ticket.status in DEADLINE_RUNNING and ticket.deadline_at is not None


def is_past_deadline(ticket: Ticket, now: datetime) -> bool:
    return is_running(ticket) and ticket.deadline_at is not None and now >= ticket.deadline_at


def note_missed_deadline(ticket: Ticket, now: datetime) -> None:
    """Marks the ticket overdue for good once its running deadline has passed."""
    if is_past_deadline(ticket, now):
        ticket.overdue = True


def is_overdue(ticket: Ticket, now: datetime) -> bool:
    return ticket.overdue or is_past_deadline(ticket, now)


def warning_of(ticket: Ticket, now: datetime) -> WarningLevel | None:
    if not is_running(ticket):
        return None
    assert ticket.deadline_at is not None
    if now >= ticket.deadline_at:
        return WarningLevel.red
    if ticket.warning_at is not None and now >= ticket.warning_at:
        return WarningLevel.yellow
    return WarningLevel.green


def _running_clause() -> ColumnElement[bool]:
    return and_(Ticket.status.in_(list(DEADLINE_RUNNING)), Ticket.deadline_at.is_not(None))


def overdue_clause(overdue: bool, now: datetime) -> ColumnElement[bool]:
    past = and_(_running_clause(), Ticket.deadline_at <= now)
    clause = or_(Ticket.overdue, past)
    return clause if overdue else ~clause


def warning_clause(warning: WarningLevel, now: datetime) -> ColumnElement[bool]:
    """The SQL form of `warning_of(ticket, now) == warning`."""
    colour = {
        WarningLevel.red: Ticket.deadline_at <= now,
        WarningLevel.yellow: and_(Ticket.deadline_at > now, Ticket.warning_at <= now),
        WarningLevel.green: Ticket.warning_at > now,
    }[warning]
    return and_(_running_clause(), colour)
