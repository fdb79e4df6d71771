"""Ticket changes announced on PostgreSQL: each statement that adds history rows sends
`NOTIFY ticket_changes` with the newest row's id (none when it added none, as a report's
resend does), delivered at commit, so that each process
listens on one connection for all its console streams (`app/console/changes.py`). SQLite has
no notifications: its processes read the newest id at intervals.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE FUNCTION ticket_changes_notice() RETURNS trigger LANGUAGE plpgsql AS $$"
        " DECLARE newest bigint := (SELECT max(id) FROM added); BEGIN"
        " IF newest IS NOT NULL THEN PERFORM pg_notify('ticket_changes', newest::text); END IF;"
        " RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER ticket_changes_notice AFTER INSERT ON ticket_history "
        "REFERENCING NEW TABLE AS added FOR EACH STATEMENT "
        "EXECUTE FUNCTION ticket_changes_notice()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER ticket_changes_notice ON ticket_history")
    op.execute("DROP FUNCTION ticket_changes_notice()")
