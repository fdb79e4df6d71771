from datetime import date

from sqlalchemy import Boolean, Date, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base


class CalendarDay(Base):
    """A deployment's own word on one day: a working day or not. It overrides the official
    calendar (a district's extra day off) and stands in for it in a year the library does not
    cover yet."""

    __tablename__ = "calendar_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    working: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(String(200), default=None)
