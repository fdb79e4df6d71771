"""Field types shared by request schemas."""

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, StringConstraints


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range") from exc


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
