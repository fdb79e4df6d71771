"""The open tickets' indexes carry what the closure statistics' count of overdue open tickets
reads (`OVERDUE_COUNT_READS`), so that it reads them alone on PostgreSQL: at 10 million
generated tickets, a district's year read 7,589 open tickets from 7,554 heap pages in 22-47 ms,
and from the index in 8-9 ms (`docs/benchmarks.md`). Every change of those columns but the
scheduler's marking moves `alarm_at` or `status` too, which are indexed already, so no update
that was HOT stops being one. SQLite has no INCLUDE: nothing changes there.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_PREDICATE = (
    "status IN ('checking', 'dispatched', 'feedback', 'in_progress', 'reported', 'suspended')"
)
READS = [
    "status",
    "overdue",
    "deadline_at",
    "town_code",
    "community_code",
    "category_code",
    "department_code",
]
INDEXES = {  # name: (key columns, included columns)
    "ix_tickets_open": (["reported_at"], ["district_code", *READS]),
    "ix_tickets_open_town": (["town_code", "reported_at"], [c for c in READS if c != "town_code"]),
}


def _replace(covering: bool) -> None:
    """Builds each index anew beside the one it replaces, then swaps them: statistics keep
    an index of the open tickets, and ticket writes go on, while it is built."""
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        for name, (columns, included) in INDEXES.items():
            op.create_index(
                f"{name}_new",
                "tickets",
                columns,
                postgresql_where=sa.text(OPEN_PREDICATE),
                postgresql_include=included if covering else [],
                postgresql_concurrently=True,
            )
            op.drop_index(name, table_name="tickets", postgresql_concurrently=True)
            op.execute(f"ALTER INDEX {name}_new RENAME TO {name}")


def upgrade() -> None:
    _replace(covering=True)


def downgrade() -> None:
    _replace(covering=False)
