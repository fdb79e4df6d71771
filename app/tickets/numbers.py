from zoneinfo import ZoneInfo

from app.tickets.models import Ticket


def ticket_number(ticket: Ticket, prefix: str, tz: ZoneInfo) -> str:
    """`NH-20261122-000123`: prefix, local reporting day, id. Unique because the id is."""
    return f"{prefix}-{ticket.reported_at.astimezone(tz):%Y%m%d}-{ticket.id:06d}"
