from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime
from app.tickets.models import BigId

PENDING = "delivered_at IS NULL AND dead_at IS NULL"
DEAD = "dead_at IS NOT NULL"


class OutboxMessage(Base):
    """An event for one webhook, written in the transaction of the change it reports and
    delivered (at least once) by the worker, or given up as a dead letter (`dead_at`) after
    `GRIDWORK_WEBHOOK_MAX_ATTEMPTS` attempts or `GRIDWORK_WEBHOOK_MAX_AGE_HOURS`, until an
    admin retries it (`retried_at`, from when its age counts again)."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "next_attempt_at",
            postgresql_where=text(PENDING),
            sqlite_where=text(PENDING),
        ),
        Index(
            "ix_outbox_dead", "dead_at", "id", postgresql_where=text(DEAD), sqlite_where=text(DEAD)
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[UUID] = mapped_column(Uuid)
    event_type: Mapped[str] = mapped_column(String(40))
    ticket_id: Mapped[int | None] = mapped_column(BigId, default=None)
    url: Mapped[str] = mapped_column(String(500))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    dead_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    retried_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
