"""Open tickets by position, for duplicate hints and the map around a ticket

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 14:36:53.056865
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tickets_open_position",
            ["lat", "lon"],
            unique=False,
            postgresql_where=sa.text(
                "status IN ('dispatched', 'feedback', 'in_progress', 'reported', 'suspended')"
            ),
            sqlite_where=sa.text(
                "status IN ('dispatched', 'feedback', 'in_progress', 'reported', 'suspended')"
            ),
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_tickets_open_position",
            postgresql_where=sa.text(
                "status IN ('dispatched', 'feedback', 'in_progress', 'reported', 'suspended')"
            ),
            sqlite_where=sa.text(
                "status IN ('dispatched', 'feedback', 'in_progress', 'reported', 'suspended')"
            ),
        )
