"""The deadline of a ticket: starting, pausing, moving it, and reading its warning colour.

Each rule exists twice, for a loaded ticket and as SQL for list filters; they sit side by side
here so they cannot drift apart.
"""

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, or_

from app.tickets.machine import DEADLINE_RUNNING
from app.tickets.models import Ticket, status_among
from app.timing.calendar import WorkingCalendar
from app.timing.limits import (
    TimeLimit,
    TimeUnit,
    add_limit,
    advance,
    begin_of,
    span,
    warning_threshold,
)


class WarningLevel(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


class AlarmStage(StrEnum):
    """What the scheduler does next about the running deadline: warn, then act on the miss."""

    warning = "warning"
    deadline = "deadline"


def _unit(ticket: Ticket) -> TimeUnit:
    assert ticket.time_limit_unit is not None
    return TimeUnit(ticket.time_limit_unit)


def start_deadline(
    ticket: Ticket, start: datetime, limit: TimeLimit, calendar: WorkingCalendar | None
) -> None:
    """A fresh deadline of `limit` counted from `start` (working limits from the next working
    moment), with its yellow point and a scheduler alarm."""
    begin = begin_of(start, limit.unit, calendar)
    ticket.time_limit_value, ticket.time_limit_unit = limit.value, limit.unit
    ticket.deadline_started_at = begin
    ticket.deadline_at = add_limit(begin, limit, calendar)
    ticket.warning_at = warning_threshold(begin, ticket.deadline_at, limit.unit, calendar)
    ticket.alarm_stage = AlarmStage.warning


def resume_deadline(
    ticket: Ticket, paused_at: datetime, now: datetime, calendar: WorkingCalendar | None
) -> timedelta:
    """Moves the deadline by the time it was paused, in the limit's own time; returns that."""
    assert ticket.deadline_at is not None and ticket.deadline_started_at is not None
    unit = _unit(ticket)
    paused = span(paused_at, now, unit, calendar)
    if not paused:  # moving a deadline on a period's end by nothing would skip the break
        return paused
    ticket.deadline_started_at = advance(ticket.deadline_started_at, paused, unit, calendar)
    ticket.deadline_at = advance(ticket.deadline_at, paused, unit, calendar)
    ticket.warning_at = warning_threshold(
        ticket.deadline_started_at, ticket.deadline_at, unit, calendar
    )
    return paused


def extend_deadline(ticket: Ticket, extension: TimeLimit, calendar: WorkingCalendar | None) -> None:
    """Moves the deadline by an approved extension; yellow stays at 80% of the longer span."""
    assert ticket.deadline_at is not None and ticket.deadline_started_at is not None
    ticket.deadline_at = add_limit(ticket.deadline_at, extension, calendar)
    ticket.warning_at = warning_threshold(
        ticket.deadline_started_at, ticket.deadline_at, _unit(ticket), calendar
    )


def sync_alarm(ticket: Ticket) -> None:
    """When the scheduler must next look at the ticket: its yellow point or its deadline while
    the deadline runs and that stage is not done yet; never otherwise."""
    stage = ticket.alarm_stage
    if ticket.status not in DEADLINE_RUNNING or stage is None:
        ticket.alarm_at = None
    else:
        ticket.alarm_at = ticket.warning_at if stage == AlarmStage.warning else ticket.deadline_at


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
    return and_(status_among(DEADLINE_RUNNING), Ticket.deadline_at.is_not(None))


def overdue_clause(overdue: bool, now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    past = and_(_running_clause(), Ticket.deadline_at <= now)
    clause = or_(Ticket.overdue, past)
    return clause if overdue else ~clause


def warning_clause(
    warning: WarningLevel, now: datetime | ColumnElement[datetime]
) -> ColumnElement[bool]:
    """The SQL form of `warning_of(ticket, now) == warning`."""
    colour = {
        WarningLevel.red: Ticket.deadline_at <= now,
        WarningLevel.yellow: and_(Ticket.deadline_at > now, Ticket.warning_at <= now),
        WarningLevel.green: Ticket.warning_at > now,
    }[warning]
    return and_(_running_clause(), colour)
