"""Tickets by position: only open tickets are ever looked up by position (0008 indexes them),
so the index of every ticket's position only cost each write

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 17:45:12.297066
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_position")


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_position", ["lat", "lon"], unique=False)
