"""Time limits and the deadline arithmetic built on them.

`minutes` and `hours` run on the natural clock. Working-time units are counted on the natural
clock too for now (hours, and days of 24 hours); the working calendar replaces `add_limit` alone.
"""

from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

WARNING_FRACTION = 0.8


class TimeUnit(StrEnum):
    minutes = "minutes"
    hours = "hours"
    working_hours = "working_hours"
    working_days = "working_days"


class TimeLimit(BaseModel):
    model_config = ConfigDict(frozen=True)

    value: int = Field(gt=0, le=100_000, description="how many units")
    unit: TimeUnit

    @classmethod
    def of(cls, value: int | None, unit: str | None) -> "TimeLimit | None":
        return None if value is None or unit is None else cls(value=value, unit=TimeUnit(unit))


_NATURAL_LENGTH = {
    TimeUnit.minutes: timedelta(minutes=1),
    TimeUnit.hours: timedelta(hours=1),
    TimeUnit.working_hours: timedelta(hours=1),
    TimeUnit.working_days: timedelta(days=1),
}


def add_limit(start: datetime, limit: TimeLimit) -> datetime:
    """The moment `limit` after `start`."""
    return start + limit.value * _NATURAL_LENGTH[limit.unit]


def warning_threshold(start: datetime, due: datetime) -> datetime:
    """The moment `WARNING_FRACTION` of the span from `start` to `due` is used."""
    return start + (due - start) * WARNING_FRACTION
