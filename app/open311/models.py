from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


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
    for staff only: the Open311 channel never shows them."""

    __tablename__ = "open311_requests"
    __table_args__ = (Index("ix_open311_requests_client_time", "client_id", "requested_at"),)

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("open311_clients.id"))
    token: Mapped[str] = mapped_column(String(32), unique=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    address: Mapped[str | None] = mapped_column(Text, default=None)
    address_id: Mapped[str | None] = mapped_column(String(200), default=None)
    media_url: Mapped[str | None] = mapped_column(String(2000), default=None)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    contact: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
