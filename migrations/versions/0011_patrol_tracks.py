"""Patrol tracks (`track_points`), and tickets by closing time for the tickets around a point

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLOSED = "closed_at IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "track_points",
        sa.Column("worker", sa.String(length=64), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("worker_grid_code", sa.String(length=32), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("in_grid", sa.Boolean(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["worker"], ["users.username"], name=op.f("fk_track_points_worker_users")
        ),
        sa.PrimaryKeyConstraint("worker", "at", name=op.f("pk_track_points")),
    )
    with op.batch_alter_table("track_points", schema=None) as batch_op:
        batch_op.create_index("ix_track_points_grid_at", ["worker_grid_code", "at"], unique=False)
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tickets_closed_at",
            ["closed_at", "lat", "lon"],
            unique=False,
            postgresql_where=sa.text(CLOSED),
            sqlite_where=sa.text(CLOSED),
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_tickets_closed_at", postgresql_where=sa.text(CLOSED), sqlite_where=sa.text(CLOSED)
        )
    with op.batch_alter_table("track_points", schema=None) as batch_op:
        batch_op.drop_index("ix_track_points_grid_at")
    op.drop_table("track_points")
