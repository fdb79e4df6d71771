"""Tickets' indexes measured (`bench.index_plans`): `ix_tickets_open_town` is never chosen
(the overdue open tickets of a town are read through `ix_tickets_open`), and
`tickets.duplicate_of` gets one (a deleted ticket's foreign-key check read the whole table).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_PREDICATE = (
    "status IN ('checking', 'dispatched', 'feedback', 'in_progress', 'reported', 'suspended')"
)
DUPLICATE = "duplicate_of IS NOT NULL"


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_open_town")
        batch_op.create_index(
            "ix_tickets_duplicate_of",
            ["duplicate_of"],
            unique=False,
            postgresql_where=sa.text(DUPLICATE),
            sqlite_where=sa.text(DUPLICATE),
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_duplicate_of")
        batch_op.create_index(
            "ix_tickets_open_town",
            ["town_code", "reported_at"],
            unique=False,
            postgresql_where=sa.text(OPEN_PREDICATE),
            sqlite_where=sa.text(OPEN_PREDICATE),
        )
