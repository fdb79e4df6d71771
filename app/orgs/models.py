from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class Level(StrEnum):
    district = "district"
    town = "town"
    community = "community"
    grid = "grid"

    @property
    def parent(self) -> "Level | None":
        order = list(Level)
        index = order.index(self)
        return order[index - 1] if index > 0 else None


class OrgUnit(Base):
    """A node of the district > town > community > grid tree.

    `path` is the materialised path of codes from the root (`/NH/GC/GC01/`), so a subtree is a
    prefix match.
    """

    __tablename__ = "org_units"
    __table_args__ = (
        CheckConstraint("level IN ('district', 'town', 'community', 'grid')", name="level"),
    )

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(16))
    parent_code: Mapped[str | None] = mapped_column(
        ForeignKey("org_units.code"), index=True, default=None
    )
    path: Mapped[str] = mapped_column(String(400), index=True)
    boundary: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


# An org unit's columns but its boundary (the grid map's): what is read of a unit to read.
UNIT_COLUMNS = [column for column in OrgUnit.__table__.c if column.key != "boundary"]


class Department(Base):
    """A handling department (处置部门) attached to an org unit."""

    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    org_unit_code: Mapped[str] = mapped_column(ForeignKey("org_units.code"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Category(Base):
    """An event category with its handling time limits (normal and urgent)."""

    __tablename__ = "categories"
    __table_args__ = (
        CheckConstraint("time_limit_value > 0", name="time_limit_positive"),
        CheckConstraint(
            "urgent_time_limit_value IS NULL OR urgent_time_limit_value > 0",
            name="urgent_time_limit_positive",
        ),
    )

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    time_limit_value: Mapped[int] = mapped_column(Integer)
    time_limit_unit: Mapped[str] = mapped_column(String(16))
    urgent_time_limit_value: Mapped[int | None] = mapped_column(Integer, default=None)
    urgent_time_limit_unit: Mapped[str | None] = mapped_column(String(16), default=None)
    default_department_code: Mapped[str | None] = mapped_column(
        ForeignKey("departments.code"), default=None
    )
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    # Reports of this category within this distance of an open one are flagged as duplicates.
    duplicate_radius_m: Mapped[int] = mapped_column(Integer, default=100, server_default="100")
    # Open311 service definition attributes (orgs.schemas.ServiceAttribute), in order.
    attributes: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list, server_default="[]"
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
