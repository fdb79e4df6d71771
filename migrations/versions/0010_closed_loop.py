"""The closed loop continued: checks on site (status `checking`, `checked_at`), assisting
departments (`ticket_assists`), urges and reopens (their counts, `reopened` in the rollups),
`updated_at`, and the indexes of to-do lists and urged tickets

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_OPEN = "status IN ('dispatched', 'feedback', 'in_progress', 'reported', 'suspended')"
NEW_OPEN = (
    "status IN ('checking', 'dispatched', 'feedback', 'in_progress', 'reported', 'suspended')"
)
OLD_STATUSES = (
    "status IN ('reported', 'dispatched', 'in_progress', 'suspended', 'feedback', 'closed', "
    "'rated', 'rejected', 'merged')"
)
NEW_STATUSES = (
    "status IN ('reported', 'checking', 'dispatched', 'in_progress', 'suspended', 'feedback', "
    "'closed', 'rated', 'rejected', 'merged')"
)
# Partial indexes over open tickets, whose predicate names every open status.
OPEN_INDEXES = {
    "ix_tickets_open_position": ["lat", "lon"],
    "ix_tickets_open": ["reported_at"],
    "ix_tickets_open_town": ["town_code", "reported_at"],
}
# What waits for someone's next step (`awaiting=me`), newest first: name -> (column, predicate).
TO_DO_INDEXES = {
    "ix_tickets_grid_checks": ("grid_code", "status IN ('checking', 'feedback')"),
    "ix_tickets_department_handling": (
        "department_code",
        "status IN ('dispatched', 'in_progress', 'suspended')",
    ),
    "ix_tickets_owner_to_dispatch": ("owner_unit_code", "status = 'reported'"),
    "ix_tickets_owner_extension_asked": ("owner_unit_code", "pending_extension_value IS NOT NULL"),
    "ix_tickets_awaiting_rating": ("reporter", "status = 'closed' AND self_resolved = false"),
}
URGED = "urge_count > 0"


def _where(predicate: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(predicate), "sqlite_where": sa.text(predicate)}


def _open_indexes(batch_op: object, predicate: str, *, create: bool) -> None:
    for name, columns in OPEN_INDEXES.items():
        if create:
            batch_op.create_index(name, columns, unique=False, **_where(predicate))  # type: ignore[attr-defined]
        else:
            batch_op.drop_index(name, **_where(predicate))  # type: ignore[attr-defined]


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        _open_indexes(batch_op, OLD_OPEN, create=False)
        batch_op.drop_constraint(op.f("ck_tickets_status"), type_="check")
        batch_op.add_column(sa.Column("checked_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("updated_at", UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("urge_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("reopen_count", sa.Integer(), server_default="0", nullable=False)
        )
    # A ticket's latest change is its latest history row.
    op.execute(
        "UPDATE tickets SET updated_at = COALESCE("
        "(SELECT MAX(h.at) FROM ticket_history h WHERE h.ticket_id = tickets.id), reported_at)"
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.alter_column("updated_at", existing_type=UTCDateTime(), nullable=False)
        batch_op.create_check_constraint(op.f("ck_tickets_status"), NEW_STATUSES)
        _open_indexes(batch_op, NEW_OPEN, create=True)
        for name, (column, predicate) in TO_DO_INDEXES.items():
            batch_op.create_index(
                name, [column, "reported_at", "id"], unique=False, **_where(predicate)
            )
        batch_op.create_index(
            "ix_tickets_urged", ["reported_at", "id"], unique=False, **_where(URGED)
        )

    op.create_table(
        "ticket_assists",
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("department_code", sa.String(length=32), nullable=False),
        sa.Column("asked_at", UTCDateTime(), nullable=False),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.Column("done_by", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("on_time", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_code"],
            ["departments.code"],
            name=op.f("fk_ticket_assists_department_code_departments"),
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_assists_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("ticket_id", "department_code", name=op.f("pk_ticket_assists")),
    )
    with op.batch_alter_table("ticket_assists", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ticket_assists_department", ["department_code", "ticket_id"], unique=False
        )

    with op.batch_alter_table("closure_rollups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reopened", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("closure_rollups", schema=None) as batch_op:
        batch_op.drop_column("reopened")
    with op.batch_alter_table("ticket_assists", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_assists_department")
    op.drop_table("ticket_assists")
    # A ticket being checked goes back to waiting for dispatch, which the old schema knows.
    op.execute("UPDATE tickets SET status = 'reported' WHERE status = 'checking'")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_urged", **_where(URGED))
        for name, (_, predicate) in TO_DO_INDEXES.items():
            batch_op.drop_index(name, **_where(predicate))
        _open_indexes(batch_op, NEW_OPEN, create=False)
        batch_op.drop_constraint(op.f("ck_tickets_status"), type_="check")
        batch_op.drop_column("reopen_count")
        batch_op.drop_column("urge_count")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("checked_at")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_check_constraint(op.f("ck_tickets_status"), OLD_STATUSES)
        _open_indexes(batch_op, OLD_OPEN, create=True)
