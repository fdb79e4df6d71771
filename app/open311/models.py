from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime

CONTACT_KEPT = "contact_purged_at IS NULL"


class Open311Client(Base):
    """A citizen-facing application allowed to file requests through Open311. Only the SHA-256
    of its API key is stored (the key is random and long, so a slow hash adds nothing)."""

    __tablename__ = "open311_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(8))  # tells keys apart in listings and logs
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class Open311Request(Base):
    """What a citizen sent through Open311 beyond the ticket itself. The contact details are
    for staff only: the Open311 channel never shows them, and the worker empties them
    `GRIDWORK_CONTACT_RETENTION_DAYS` after the request (`contact_purged_at`)."""

    __tablename__ = "open311_requests"
    __table_args__ = (
        Index("ix_open311_requests_client_time", "client_id", "requested_at"),
        # The requests whose contact details are still kept, oldest first (the purge).
        Index(
            "ix_open311_requests_contact_kept",
            "requested_at",
            postgresql_where=text(CONTACT_KEPT),
            sqlite_where=text(CONTACT_KEPT),
        ),
    )

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("open311_clients.id"))
    token: Mapped[str] = mapped_column(String(32), unique=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    address: Mapped[str | None] = mapped_column(Text, default=None)
    address_id: Mapped[str | None] = mapped_column(String(200), default=None)
    media_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    contact: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    contact_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class PublicHiddenTicket(Base):
    """A ticket a dispatcher took off the public channel, with who did it, when and why (the
    ticket's history keeps every change). Without a row the channel's usual rule applies."""

    __tablename__ = "public_hidden_tickets"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    hidden_at: Mapped[datetime] = mapped_column(UTCDateTime)
    hidden_by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
