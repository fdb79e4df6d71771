"""Sessions and sign-ins: refresh-token families, sign-in throttles by client address, and
usernames unique whatever their case

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 00:00:00
"""

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

from app.db import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


@contextmanager
def _reflecting_users() -> Iterator[None]:
    """SQLite's batch mode reflects `users` when it rebuilds a table referring to it, and
    SQLAlchemy cannot reflect the index on lower(username), which it warns about. The index is
    kept: `users` itself is not rebuilt. (A later migration that rebuilds `users` on SQLite in
    batch mode must create uq_users_username_lower again.)"""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "Skipped unsupported reflection of expression-based index"
        )
        yield


def _refuse_usernames_differing_in_case() -> None:
    clashes = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT lower(username) FROM users GROUP BY lower(username) "
                "HAVING count(*) > 1 ORDER BY lower(username)"
            )
        )
        .scalars()
        .all()
    )
    if clashes:
        names = ", ".join(clashes[:20])
        raise RuntimeError(
            "usernames must be unique whatever their case, but these are taken more than once "
            f"in different cases: {names}. Rename all but one of each, then migrate again."
        )


def upgrade() -> None:
    _refuse_usernames_differing_in_case()
    op.create_index(
        "uq_users_username_lower", "users", [sa.literal_column("lower(username)")], unique=True
    )

    # Every refresh token issued so far starts a family of its own.
    with _reflecting_users():
        with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
            batch_op.add_column(sa.Column("family_id", sa.String(length=32), nullable=True))
            batch_op.add_column(sa.Column("family_started_at", UTCDateTime(), nullable=True))
        op.execute(
            "UPDATE refresh_tokens SET family_id = CAST(id AS VARCHAR(32)), "
            "family_started_at = issued_at"
        )
        with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
            batch_op.alter_column("family_id", existing_type=sa.String(length=32), nullable=False)
            batch_op.alter_column("family_started_at", existing_type=UTCDateTime(), nullable=False)
            batch_op.create_index("ix_refresh_tokens_family_id", ["family_id"], unique=False)
            batch_op.create_index("ix_refresh_tokens_expires_at", ["expires_at"], unique=False)

    op.create_table(
        "login_throttles",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", UTCDateTime(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_login_throttles")),
    )


def downgrade() -> None:
    op.drop_table("login_throttles")
    with _reflecting_users(), op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_refresh_tokens_expires_at")
        batch_op.drop_index("ix_refresh_tokens_family_id")
        batch_op.drop_column("family_started_at")
        batch_op.drop_column("family_id")
    op.drop_index("uq_users_username_lower", table_name="users")
