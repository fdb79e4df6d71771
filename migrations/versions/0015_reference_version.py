"""Reference data kept by each process: one version (`reference_version`) that triggers bump
on every change of org units, departments, categories, calendar days or the rollups' state; it
replaces the grid map's token.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 07:30:00
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED_TABLES = ("org_units", "departments", "categories", "calendar_days", "closure_rollup_state")
BUMP = "UPDATE reference_version SET version = version + 1 WHERE id = 1"
SQLITE_EVENTS = ("INSERT", "UPDATE", "DELETE")


def upgrade() -> None:
    op.create_table(
        "reference_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_reference_version_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_version")),
    )
    op.execute("INSERT INTO reference_version (id, version) VALUES (1, 1)")
    op.drop_table("grid_map_version")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION reference_changed() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in WATCHED_TABLES:
            op.execute(
                f"CREATE TRIGGER reference_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION reference_changed()"
            )
    else:  # SQLite has triggers for each row only
        for table in WATCHED_TABLES:
            for verb in SQLITE_EVENTS:
                op.execute(
                    f"CREATE TRIGGER {table}_{verb.lower()}_reference_changed AFTER {verb} "
                    f"ON {table} BEGIN {BUMP}; END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED_TABLES:
            op.execute(f"DROP TRIGGER reference_changed ON {table}")
        op.execute("DROP FUNCTION reference_changed()")
    else:
        for table in WATCHED_TABLES:
            for verb in SQLITE_EVENTS:
                op.execute(f"DROP TRIGGER {table}_{verb.lower()}_reference_changed")
    op.create_table(
        "grid_map_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grid_map_version")),
    )
    op.execute(
        sa.text("INSERT INTO grid_map_version (id, token) VALUES (1, :token)").bindparams(
            token=uuid.uuid4().hex
        )
    )
    op.drop_table("reference_version")
