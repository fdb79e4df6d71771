"""The open tickets of a town by reporting time, again (`ix_tickets_open_town`, dropped by
0016 on a measurement at 1 million tickets with few of them open): at 10 million generated
tickets with 31,820 open, a town's year of closure statistics read the open ones through
`ix_tickets_open` and the town's listing, 20,035 buffers and 182-384 ms, against 867 buffers
and 10 ms through this index (`docs/benchmarks.md`).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_PREDICATE = (
    "status IN ('checking', 'dispatched', 'feedback', 'in_progress', 'reported', 'suspended')"
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.create_index(
            "ix_tickets_open_town",
            "tickets",
            ["town_code", "reported_at"],
            sqlite_where=sa.text(OPEN_PREDICATE),
        )
        return
    with op.get_context().autocommit_block():  # ticket writes go on while it is built
        op.create_index(
            "ix_tickets_open_town",
            "tickets",
            ["town_code", "reported_at"],
            postgresql_where=sa.text(OPEN_PREDICATE),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index("ix_tickets_open_town", table_name="tickets")
