from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.auth.models import Role
from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.demo import seed_demo
from app.main import create_app
from tests.browsers import browser  # noqa: F401 (a fixture, for the modules that define `live`)
from tests.conftest import TEST_SECRET
from tests.helpers import Api, add_user

EXTRA_USERS = [  # beyond the demo's: people outside the demo tickets' scope
    ("dl_dispatcher", Role.dispatcher, "DL01", None),
    ("gc02_dispatcher", Role.dispatcher, "GC02", None),
    ("sz_handler", Role.handler, "NH", "NH-SZ"),
    ("xf_handler", Role.handler, "NH", "NH-XF"),
    ("gc_supervisor", Role.supervisor, "GC", None),
    ("dl_supervisor", Role.supervisor, "DL", None),
]


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    # Long-lived access tokens, so tests may move the clock by days; test_auth shortens them.
    return Settings(
        env="test",
        database_url=database.url,
        secret_key=TEST_SECRET,
        access_token_minutes=60 * 24 * 365,
        attachments_dir=str(tmp_path / "attachments"),
    )


@pytest.fixture
async def world(empty_db: Database, clock: FrozenClock) -> Database:
    """The demo district, its categories and users, plus users of other scopes."""
    async with empty_db.sessions() as session:
        await seed_demo(session, clock.now())
        for username, role, unit, department in EXTRA_USERS:
            await add_user(session, username, role, unit, department, clock.now())
        await session.commit()
    return empty_db


@pytest.fixture
def app(world: Database, settings: Settings, clock: FrozenClock) -> FastAPI:
    return create_app(settings, database=world, clock=clock)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridwork.test") as c:
        yield c


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)
