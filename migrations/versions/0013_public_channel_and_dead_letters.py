"""The public channel and dead letters: tickets hidden from Open311 (`public_hidden_tickets`),
when a citizen's contact details were purged (`open311_requests.contact_purged_at`), and
webhook messages given up (`outbox.dead_at`, `outbox.retried_at`)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_PENDING = "delivered_at IS NULL"
PENDING = "delivered_at IS NULL AND dead_at IS NULL"
DEAD = "dead_at IS NOT NULL"
CONTACT_KEPT = "contact_purged_at IS NULL"


def _where(predicate: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(predicate), "sqlite_where": sa.text(predicate)}


def upgrade() -> None:
    op.create_table(
        "public_hidden_tickets",
        sa.Column(
            "ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("hidden_at", UTCDateTime(), nullable=False),
        sa.Column("hidden_by", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_public_hidden_tickets_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_public_hidden_tickets")),
    )
    with op.batch_alter_table("open311_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_purged_at", UTCDateTime(), nullable=True))
        batch_op.create_index(
            "ix_open311_requests_contact_kept", ["requested_at"], **_where(CONTACT_KEPT)
        )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dead_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("retried_at", UTCDateTime(), nullable=True))
        batch_op.drop_index("ix_outbox_pending", **_where(OLD_PENDING))
        batch_op.create_index("ix_outbox_pending", ["next_attempt_at"], **_where(PENDING))
        batch_op.create_index("ix_outbox_dead", ["dead_at", "id"], **_where(DEAD))


def downgrade() -> None:
    # Dead letters become pending again: a downgraded worker retries them.
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_dead", **_where(DEAD))
        batch_op.drop_index("ix_outbox_pending", **_where(PENDING))
        batch_op.create_index("ix_outbox_pending", ["next_attempt_at"], **_where(OLD_PENDING))
        batch_op.drop_column("retried_at")
        batch_op.drop_column("dead_at")
    with op.batch_alter_table("open311_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_open311_requests_contact_kept", **_where(CONTACT_KEPT))
        batch_op.drop_column("contact_purged_at")
    op.drop_table("public_hidden_tickets")
