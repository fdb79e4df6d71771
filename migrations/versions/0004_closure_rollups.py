"""closure rollups

The tables start empty and unmarked; `gridwork migrate` builds them from the tickets (until
then the statistics count the tickets).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 09:33:28.340968
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_PREDICATE = "status IN ('dispatched', 'feedback', 'in_progress', 'reported', 'suspended')"
OPEN_TICKET_INDEXES = {
    "ix_tickets_open": ["reported_at"],
    "ix_tickets_open_town": ["town_code", "reported_at"],
}


def upgrade() -> None:
    op.create_table(
        "closure_rollup_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_closure_rollup_state")),
    )
    op.create_table(
        "closure_rollups",
        sa.Column("community_code", sa.String(length=32), nullable=False),
        sa.Column("grain", sa.String(length=1), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("category_code", sa.String(length=32), nullable=False),
        sa.Column("department_code", sa.String(length=32), nullable=False),
        sa.Column("town_code", sa.String(length=32), nullable=False),
        sa.Column("district_code", sa.String(length=32), nullable=False),
        sa.Column("reported", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("closed", sa.Integer(), nullable=False),
        sa.Column("closed_on_time", sa.Integer(), nullable=False),
        sa.Column("self_resolved", sa.Integer(), nullable=False),
        sa.Column("open", sa.Integer(), nullable=False),
        sa.Column("escalated", sa.Integer(), nullable=False),
        sa.Column("reworked", sa.Integer(), nullable=False),
        sa.Column("resolved_in_community", sa.Integer(), nullable=False),
        sa.Column("rated", sa.Integer(), nullable=False),
        sa.Column("satisfied", sa.Integer(), nullable=False),
        sa.Column("handling_seconds", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "community_code",
            "grain",
            "period",
            "category_code",
            "department_code",
            name=op.f("pk_closure_rollups"),
        ),
    )
    with op.batch_alter_table("closure_rollups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_closure_rollups_district", ["district_code", "grain", "period"], unique=False
        )
        batch_op.create_index(
            "ix_closure_rollups_town", ["town_code", "grain", "period"], unique=False
        )

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        for name, columns in OPEN_TICKET_INDEXES.items():
            batch_op.create_index(
                name,
                columns,
                unique=False,
                postgresql_where=sa.text(OPEN_PREDICATE),
                sqlite_where=sa.text(OPEN_PREDICATE),
            )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        for name in OPEN_TICKET_INDEXES:
            batch_op.drop_index(name)

    with op.batch_alter_table("closure_rollups", schema=None) as batch_op:
        batch_op.drop_index("ix_closure_rollups_town")
        batch_op.drop_index("ix_closure_rollups_district")

    op.drop_table("closure_rollups")
    op.drop_table("closure_rollup_state")
