from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo


class Numbered(Protocol):
    """A ticket, or a row of one, as far as its number goes."""

    @property
    def id(self) -> int: ...

    @property
    def reported_at(self) -> datetime: ...


def ticket_number(ticket: Numbered, prefix: str, tz: ZoneInfo) -> str:
    """`NH-20261122-000123`: prefix, local reporting day, id. Unique because the id is."""
    day = ticket.reported_at.astimezone(tz)
    return f"{prefix}-{day.year:04d}{day.month:02d}{day.day:02d}-{ticket.id:06d}"


def ticket_id_of(number: str, prefix: str) -> int | None:
    """The id inside a ticket number of this prefix, or None when it is not one. The caller
    checks the whole number against the ticket (the day part must match too)."""
    head, _, digits = number.rpartition("-")
    if not head.startswith(f"{prefix}-") or not digits.isascii() or not digits.isdigit():
        return None
    return int(digits) if len(digits) <= 18 else None
