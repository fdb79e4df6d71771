from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from app.db import make_engine
from app.models import Base
from tests.conftest import DatabaseFactory, migrate


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
