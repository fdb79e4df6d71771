"""Appraisal rollups (`appraisal_rollups`, `patrol_days`); closure rollups count reworked and
reopened tickets among accepted ones only. The rollups are marked unbuilt: `gridwork migrate`
rebuilds them all.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 03:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MEASURES = (
    "reports",
    "valid_reports",
    "public_first",
    "checks",
    "checks_on_time",
    "verifications",
    "verifications_on_time",
    "returned",
    "assists",
    "assists_done",
)


def upgrade() -> None:
    op.create_table(
        "appraisal_rollups",
        sa.Column("community_code", sa.String(length=32), nullable=False),
        sa.Column("grain", sa.String(length=1), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("party", sa.String(length=16), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("town_code", sa.String(length=32), nullable=False),
        sa.Column("district_code", sa.String(length=32), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in MEASURES),
        sa.PrimaryKeyConstraint(
            "community_code", "grain", "period", "party", "code", name=op.f("pk_appraisal_rollups")
        ),
    )
    op.create_index(
        "ix_appraisal_rollups_district", "appraisal_rollups", ["district_code", "grain", "period"]
    )
    op.create_index(
        "ix_appraisal_rollups_town", "appraisal_rollups", ["town_code", "grain", "period"]
    )
    op.create_table(
        "patrol_days",
        sa.Column("grain", sa.String(length=1), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("worker", sa.String(length=64), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "period", "worker", name=op.f("pk_patrol_days")),
    )
    op.execute("DELETE FROM closure_rollup_state")


def downgrade() -> None:
    op.drop_table("patrol_days")
    op.drop_index("ix_appraisal_rollups_town", table_name="appraisal_rollups")
    op.drop_index("ix_appraisal_rollups_district", table_name="appraisal_rollups")
    op.drop_table("appraisal_rollups")
    op.execute("DELETE FROM closure_rollup_state")
