"""Test databases: a fresh SQLite file, or a fresh PostgreSQL database when TEST_DATABASE_URL
names a PostgreSQL server. Migrations build the schema once per run; every test starts from
empty tables and the demo world."""

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from argon2 import PasswordHasher
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url

import app.auth.security as security
from app.cli import alembic_config
from app.clock import FrozenClock
from app.db import DEFAULT_TIMEZONE, Database
from app.models import Base, ClosureRollupState, ReferenceVersion
from app.stats import rollups

TEST_SECRET = "test-secret-key-that-is-long-enough-for-hs256"
# Monday 2026-11-23 10:00 in Asia/Shanghai.
START = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashing() -> Iterator[None]:
    """argon2 with minimal cost: the suite hashes and verifies hundreds of passwords."""
    original = security._hasher
    security._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    security._hasher = original


def _pg_connect_args(url: str) -> dict[str, object]:
    parsed = make_url(url)
    return {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "password": parsed.password,
        "database": parsed.database or "postgres",
    }


class DatabaseFactory:
    """Creates fresh, empty databases on the server under test and removes them afterwards."""

    def __init__(self, base_url: str, workdir: Path) -> None:
        self.base_url = base_url
        self.workdir = workdir
        self.is_postgres = make_url(base_url).get_backend_name() == "postgresql"
        self.created: list[str] = []

    async def create(self) -> str:
        if not self.is_postgres:
            return f"sqlite+aiosqlite:///{self.workdir / f'{uuid.uuid4().hex}.db'}"
        name = f"gridwork_test_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(**_pg_connect_args(self.base_url))  # type: ignore[arg-type]
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.created.append(name)
        return make_url(self.base_url).set(database=name).render_as_string(hide_password=False)

    async def drop_all(self) -> None:
        if not self.created:
            return
        conn = await asyncpg.connect(**_pg_connect_args(self.base_url))  # type: ignore[arg-type]
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@pytest.fixture(scope="session")
async def databases() -> AsyncIterator[DatabaseFactory]:
    base_url = os.environ.get("TEST_DATABASE_URL", "sqlite+aiosqlite://")
    with tempfile.TemporaryDirectory(prefix="gridwork-test-") as workdir:
        factory = DatabaseFactory(base_url, Path(workdir))
        yield factory
        await factory.drop_all()


async def migrate(url: str, revision: str = "head", *, down: bool = False) -> None:
    config = alembic_config(url)
    config.attributes["configure_logging"] = False
    operation = command.downgrade if down else command.upgrade
    await asyncio.to_thread(operation, config, revision)


@pytest.fixture(scope="session")
async def database(databases: DatabaseFactory) -> AsyncIterator[Database]:
    url = await databases.create()
    await migrate(url)
    db = Database(url, pool_size=20)
    async with db.sessions() as session:  # as `gridwork migrate` does
        await rollups.rebuild(session, DEFAULT_TIMEZONE)
        await session.commit()
    yield db
    await db.dispose()


@pytest.fixture
async def empty_db(database: Database) -> AsyncIterator[Database]:
    """The test database, emptied after the test (the rollups stay marked as built: they are
    emptied with the tickets; the reference version counts on)."""
    yield database
    kept = (ClosureRollupState.__table__, ReferenceVersion.__table__)
    tables = [t for t in Base.metadata.sorted_tables if t not in kept]
    async with database.engine.begin() as conn:
        if database.is_sqlite:
            for table in reversed(tables):
                await conn.execute(delete(table))
        else:
            names = ", ".join(t.name for t in tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def postgres_only(database: Database) -> None:
    if database.is_sqlite:
        pytest.skip("needs PostgreSQL")
