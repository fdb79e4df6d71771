"""The closure rollups' sums per community and period (`community_closure_rollups`), filled
from the rollup rows: a district's year of closure statistics by month summed 28,800 rollup
rows (one per community, category and department) at 1 million tickets, and reads a few
hundred of these (`docs/benchmarks.md`).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = ("community_code", "grain", "period")
ANCESTRY = ("town_code", "district_code")
MEASURES = (
    "reported",
    "accepted",
    "closed",
    "closed_on_time",
    "self_resolved",
    "open",
    "escalated",
    "reworked",
    "reopened",
    "resolved_in_community",
    "rated",
    "satisfied",
    "handling_seconds",
)


def _measure(name: str) -> "sa.Column[int]":
    kind = sa.BigInteger() if name == "handling_seconds" else sa.Integer()
    default = "0" if name == "reopened" else None  # as in `closure_rollups`
    return sa.Column(name, kind, server_default=default, nullable=False)


def upgrade() -> None:
    op.create_table(
        "community_closure_rollups",
        sa.Column("community_code", sa.String(length=32), nullable=False),
        sa.Column("grain", sa.String(length=1), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("town_code", sa.String(length=32), nullable=False),
        sa.Column("district_code", sa.String(length=32), nullable=False),
        *(_measure(name) for name in MEASURES),
        sa.PrimaryKeyConstraint(*KEY, name=op.f("pk_community_closure_rollups")),
    )
    for area in ("district", "town"):
        op.create_index(
            f"ix_community_closure_rollups_{area}",
            "community_closure_rollups",
            [f"{area}_code", "grain", "period"],
        )
    grouped = ", ".join((*KEY, *ANCESTRY))
    sums = ", ".join(f"sum({name})" for name in MEASURES)
    op.execute(
        f"INSERT INTO community_closure_rollups ({grouped}, {', '.join(MEASURES)}) "
        f"SELECT {grouped}, {sums} FROM closure_rollups GROUP BY {grouped} "
        "ORDER BY district_code, town_code, grain, period"
    )


def downgrade() -> None:
    op.drop_table("community_closure_rollups")
