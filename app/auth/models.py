from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime
from app.orgs.models import OrgUnit


class Role(StrEnum):
    grid_worker = "grid_worker"
    dispatcher = "dispatcher"
    handler = "handler"
    supervisor = "supervisor"
    admin = "admin"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('grid_worker', 'dispatcher', 'handler', 'supervisor', 'admin')", name="role"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    org_unit_code: Mapped[str | None] = mapped_column(
        ForeignKey("org_units.code"), index=True, default=None
    )
    department_code: Mapped[str | None] = mapped_column(
        ForeignKey("departments.code"), index=True, default=None
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Bumped to invalidate every access token issued before (lost phone, disabled user).
    token_generation: Mapped[int] = mapped_column(Integer, default=0)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    first_failed_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    org_unit: Mapped[OrgUnit | None] = relationship(lazy="joined", innerjoin=False)


# Usernames are unique whatever their case: `Worker` cannot join while `worker` exists. Sign-in
# and look-ups compare lower(username), which this index serves.
Index("uq_users_username_lower", func.lower(User.username), unique=True)


class RefreshToken(Base):
    """A refresh token of the phone app, stored as its SHA-256; rotated on every use.

    The tokens rotated from one sign-in form a family: signing out revokes the family, and a
    family older than GRIDWORK_REFRESH_FAMILY_DAYS cannot be refreshed any more."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(32), index=True)
    family_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class LoginThrottle(Base):
    """Failed sign-ins from one client address (an IPv6 address counts by its /64), kept in the
    database so that every API process counts them together."""

    __tablename__ = "login_throttles"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
