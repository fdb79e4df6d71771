"""Imports every model so that `Base.metadata` is complete (migrations, tests)."""

from app.attachments.models import Attachment
from app.auth.models import RefreshToken, User
from app.db import Base
from app.notifications.models import OutboxMessage
from app.open311.models import Open311Client, Open311Request
from app.orgs.models import Category, Department, OrgUnit
from app.patrol.models import ClockIn, TrackPoint
from app.reference import ReferenceVersion
from app.stats.models import ClosureRollup, ClosureRollupState, CommunityClosureRollup
from app.tickets.models import Ticket, TicketAssist, TicketHistory
from app.timing.models import CalendarDay

__all__ = [
    "Attachment",
    "Base",
    "CalendarDay",
    "Category",
    "ClockIn",
    "ClosureRollup",
    "ClosureRollupState",
    "CommunityClosureRollup",
    "Department",
    "Open311Client",
    "Open311Request",
    "OrgUnit",
    "OutboxMessage",
    "ReferenceVersion",
    "RefreshToken",
    "Ticket",
    "TicketAssist",
    "TicketHistory",
    "TrackPoint",
    "User",
]
