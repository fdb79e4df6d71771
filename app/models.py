"""Imports every model so that `Base.metadata` is complete (migrations, tests)."""

from app.auth.models import RefreshToken, User
from app.db import Base
from app.orgs.models import Category, Department, OrgUnit
from app.tickets.models import Ticket, TicketHistory

__all__ = [
    "Base",
    "Category",
    "Department",
    "OrgUnit",
    "RefreshToken",
    "Ticket",
    "TicketHistory",
    "User",
]
