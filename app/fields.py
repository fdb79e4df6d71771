"""Field types shared by request schemas."""

from datetime import UTC, date, datetime, time
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime, StringConstraints

from app.errors import Invalid


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range") from exc


# The days a query may name: a date far from today is a typing mistake, and one at the edge of
# the calendar has no next day.
EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(2999, 12, 31)


def start_of(value: date | datetime, timezone: str, name: str) -> datetime:
    """A query parameter's moment: a date is the start of that day in `timezone`; a date-time
    needs an offset. Problems are 422 at `query.<name>`."""
    if isinstance(value, datetime) and value.tzinfo is None:
        raise Invalid("a date-time needs a UTC offset", loc=["query", name])
    start = (
        value
        if isinstance(value, datetime)
        else datetime.combine(value, time.min, tzinfo=ZoneInfo(timezone))
    )
    try:
        return start.astimezone(UTC)
    except OverflowError as exc:
        raise Invalid("the time is out of range", loc=["query", name]) from exc


# RFC 3339 with an offset, held in UTC.
Timestamp = Annotated[AwareDatetime, AfterValidator(_to_utc)]

# Free text is stripped, and refuses NUL characters (PostgreSQL cannot store them).
_NO_NUL = r"^[^\x00]*$"
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=_NO_NUL)
]
Note = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000, pattern=_NO_NUL)
]
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000, pattern=_NO_NUL)
]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000, pattern=_NO_NUL)]
