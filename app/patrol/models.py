from datetime import datetime
from uuid import UUID

from sqlalchemy import Boolean, Float, ForeignKey, Index, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime
from app.tickets.models import BigId


class ClockIn(Base):
    """A grid worker's patrol clock-in (巡查打卡): where and when, and whether it was inside the
    worker's own grid."""

    __tablename__ = "clock_ins"
    __table_args__ = (
        UniqueConstraint("worker", "client_id"),
        Index("ix_clock_ins_grid_at", "grid_code", "at"),
        Index("ix_clock_ins_worker_at", "worker", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[UUID] = mapped_column(Uuid)
    worker: Mapped[str] = mapped_column(ForeignKey("users.username"))
    # The worker's own grid when clocking in, and the grid the point fell in (None: none).
    worker_grid_code: Mapped[str] = mapped_column(String(32))
    grid_code: Mapped[str | None] = mapped_column(ForeignKey("org_units.code"), default=None)
    inside_grid: Mapped[bool] = mapped_column(Boolean)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TrackPoint(Base):
    """A point of a grid worker's patrol track (巡查轨迹), sent by the phone in batches, late
    and in any order; one per worker and instant. Whether it lies in the worker's own grid is
    decided when it arrives, with the same GPS-drift allowance as clock-ins."""

    __tablename__ = "track_points"
    __table_args__ = (
        # Patrol statistics read a day of the tracks of a unit's grids' workers.
        Index("ix_track_points_grid_at", "worker_grid_code", "at"),
    )

    worker: Mapped[str] = mapped_column(ForeignKey("users.username"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    worker_grid_code: Mapped[str] = mapped_column(String(32))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float, default=None)
    in_grid: Mapped[bool] = mapped_column(Boolean)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
