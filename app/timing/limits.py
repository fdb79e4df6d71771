"""Time limits and the arithmetic of deadlines built on them.

`minutes` and `hours` run on the natural clock (紧急工作时); `working_hours` (工作时) and
`working_days` (工作日) on the working calendar. A span of a limit is measured in the limit's
own time: natural time, or working time.
"""

import functools
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.timing.calendar import WorkingCalendar

WARNING_FRACTION = 0.8


class TimeUnit(StrEnum):
    minutes = "minutes"
    hours = "hours"
    working_hours = "working_hours"
    working_days = "working_days"

    @property
    def is_working(self) -> bool:
        return self in (TimeUnit.working_hours, TimeUnit.working_days)


# About a year in each unit: longer limits are typing mistakes.
MAX_VALUE = {
    TimeUnit.minutes: 366 * 24 * 60,
    TimeUnit.hours: 366 * 24,
    TimeUnit.working_hours: 2000,
    TimeUnit.working_days: 250,
}


class TimeLimit(BaseModel):
    model_config = ConfigDict(frozen=True)

    value: int = Field(gt=0, description="how many units (at most about a year)")
    unit: TimeUnit

    @model_validator(mode="after")
    def _at_most_a_year(self) -> "TimeLimit":
        if self.value > MAX_VALUE[self.unit]:
            raise ValueError(f"at most {MAX_VALUE[self.unit]} {self.unit}")
        return self

    @classmethod
    def of(cls, value: int | None, unit: str | None) -> "TimeLimit | None":
        """A stored limit, as it was accepted then (a later, stricter maximum does not apply)."""
        if value is None or unit is None:
            return None
        return _stored_limit(value, unit)


@functools.lru_cache(maxsize=4096)
def _stored_limit(value: int, unit: str) -> TimeLimit:
    """Shared: a limit is frozen, and every ticket of a list has one or two."""
    return TimeLimit.model_construct(value=value, unit=TimeUnit(unit))


def _need(calendar: WorkingCalendar | None) -> WorkingCalendar:
    if calendar is None:
        raise ValueError("a working-time limit needs the working calendar")
    return calendar


def add_limit(start: datetime, limit: TimeLimit, calendar: WorkingCalendar | None) -> datetime:
    """The moment `limit` after `start`."""
    if limit.unit == TimeUnit.minutes:
        return start + timedelta(minutes=limit.value)
    if limit.unit == TimeUnit.hours:
        return start + timedelta(hours=limit.value)
    if limit.unit == TimeUnit.working_hours:
        return _need(calendar).add_working_time(start, timedelta(hours=limit.value))
    return _need(calendar).add_working_days(start, limit.value)


def begin_of(start: datetime, unit: TimeUnit, calendar: WorkingCalendar | None) -> datetime:
    """Where counting starts: the moment itself, or for working time the next working moment."""
    return _need(calendar).next_working_moment(start) if unit.is_working else start


def span(
    start: datetime, end: datetime, unit: TimeUnit, calendar: WorkingCalendar | None
) -> timedelta:
    """The time from `start` to `end` in the unit's own time."""
    if unit.is_working:
        return _need(calendar).working_time_between(start, end)
    return max(end - start, timedelta())


def advance(
    start: datetime, duration: timedelta, unit: TimeUnit, calendar: WorkingCalendar | None
) -> datetime:
    """The moment `duration` after `start`, in the unit's own time."""
    if unit.is_working:
        return _need(calendar).add_working_time(start, duration)
    return start + duration


def warning_threshold(
    start: datetime, due: datetime, unit: TimeUnit, calendar: WorkingCalendar | None
) -> datetime:
    """The moment `WARNING_FRACTION` of the span from `start` to `due` is used."""
    return advance(start, span(start, due, unit, calendar) * WARNING_FRACTION, unit, calendar)
