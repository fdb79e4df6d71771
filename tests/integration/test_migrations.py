from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection

from app.config import Settings
from app.db import Database, make_engine
from app.demo import DEMO_TICKETS, seed_demo, seed_demo_tickets
from app.models import Base, Ticket
from tests.conftest import START, TEST_SECRET, DatabaseFactory, migrate


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_upgrade_downgrade_upgrade_and_models_agree(databases: DatabaseFactory) -> None:
    url = await databases.create()
    engine = make_engine(url)
    try:
        await migrate(url)
        await migrate(url, "base", down=True)
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == set()
        await migrate(url)
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == set(Base.metadata.tables)
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_the_closed_loop_migration_keeps_tickets_both_ways(
    databases: DatabaseFactory,
) -> None:
    """0010 rebuilds the tickets table on SQLite, which others refer to: with tickets in it,
    down to 0009 (a ticket being checked waits for dispatch again) and up again."""
    url = await databases.create()
    await migrate(url)
    database = Database(url)
    settings = Settings(env="test", database_url=url, secret_key=TEST_SECRET)
    try:
        async with database.sessions() as session:
            await seed_demo(session, START)
            await seed_demo_tickets(session, settings, START)
            await session.commit()
        await migrate(url, "0009", down=True)
        async with database.engine.connect() as conn:
            statuses = (await conn.execute(text("SELECT status FROM tickets"))).scalars().all()
        assert "checking" not in statuses and len(statuses) == len(DEMO_TICKETS)

        await migrate(url)

        async with database.sessions() as session:
            tickets = (await session.scalars(select(Ticket))).all()
        assert len(tickets) == len(DEMO_TICKETS)
        assert all(t.updated_at is not None and t.reopen_count == 0 for t in tickets)
    finally:
        await database.dispose()
