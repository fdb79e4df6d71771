from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class Attachment(Base):
    """An uploaded photo. Its bytes live in the attachment store under their SHA-256, stripped
    of metadata; it belongs to no ticket until a report, feedback or verification names it."""

    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_ticket", "ticket_id", "uploaded_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    thumbnail_sha256: Mapped[str] = mapped_column(String(64))
    media_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[str] = mapped_column(ForeignKey("users.username"))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None)
    stage: Mapped[str | None] = mapped_column(String(16), default=None)  # service.STAGES
