"""Hundreds of open consoles on one process (`app/console/changes.py`): each process learns of
ticket changes once, on one listening connection on PostgreSQL (one reader on SQLite), and
tells every open stream; an idle stream costs the database nothing."""

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import text

from app.clock import FrozenClock
from app.config import Settings
from app.console.changes import ChangeFeed
from app.db import Database
from tests.helpers import Api
from tests.live import LiveServer

STREAMS = 200
IDLE_SECONDS = 1.0


@pytest.fixture
def live(world: Database, settings: Settings, clock: FrozenClock) -> Iterator[LiveServer]:
    quick = {"console_check_seconds": 0.2, "console_stream_seconds": 60.0}
    server = LiveServer(settings.model_copy(update=quick), clock)
    yield server
    server.stop()


async def _listeners(database: Database) -> int:
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gridwork-changes'"
    async with database.engine.connect() as connection:
        return int((await connection.execute(text(query))).scalar_one())


async def _events(response: httpx.Response) -> AsyncIterator[str]:
    """The ids of a stream's `tickets` events as they come."""
    async for line in response.aiter_lines():
        if line.startswith("id: "):
            yield line.removeprefix("id: ")


async def test_two_hundred_open_consoles_learn_of_a_change_from_one_listener(
    live: LiveServer, world: Database
) -> None:
    statements = live.count_statements()
    limits = httpx.Limits(max_connections=STREAMS + 10)
    async with httpx.AsyncClient(base_url=live.url, timeout=30, limits=limits) as client:
        api = Api(client)
        issued = await client.post(
            "/console/stream-ticket", headers=await api.headers("dispatcher")
        )
        ticket = issued.json()["ticket"]
        listeners_before = 0 if world.is_sqlite else await _listeners(world)

        async def console(opened: asyncio.Queue[str], told: asyncio.Queue[str]) -> None:
            params = {"ticket": ticket}
            async with client.stream("GET", "/console/stream", params=params) as response:
                assert response.status_code == 200
                ids = _events(response)
                await opened.put(await anext(ids))  # the newest change when it opened
                await told.put(await anext(ids))  # the next one

        opened: asyncio.Queue[str] = asyncio.Queue()
        told: asyncio.Queue[str] = asyncio.Queue()
        consoles = [asyncio.create_task(console(opened, told)) for _ in range(STREAMS)]
        try:
            first = {await asyncio.wait_for(opened.get(), 30) for _ in range(STREAMS)}
            assert len(first) == 1

            # Open and idle: no statement at all on PostgreSQL, one reader's on SQLite.
            before = statements[0]
            await asyncio.sleep(IDLE_SECONDS)  # an idle while, for its cost
            idle_statements = statements[0] - before
            if world.is_sqlite:
                assert idle_statements <= IDLE_SECONDS / 0.2 + 2
            else:
                assert idle_statements == 0
                assert await _listeners(world) == listeners_before + 1

            reported = await api.report()
            news = {await asyncio.wait_for(told.get(), 30) for _ in range(STREAMS)}
        finally:
            for task in consoles:
                task.cancel()
            await asyncio.gather(*consoles, return_exceptions=True)
    assert len(news) == 1 and news != first
    history = await _history_ids(world, reported["id"])
    assert int(news.pop()) in history


async def _history_ids(database: Database, ticket_id: int) -> set[int]:
    query = text("SELECT id FROM ticket_history WHERE ticket_id = :id")
    async with database.engine.connect() as connection:
        return set((await connection.execute(query, {"id": ticket_id})).scalars())


async def test_the_listener_listens_again_after_its_connection_breaks(
    world: Database, api: Api, postgres_only: None
) -> None:
    feed = ChangeFeed(world, check_seconds=0.2)
    try:
        newest = await feed.refresh()
        assert await feed.after(newest, 0.01) == newest  # listening, nothing new
        terminate = (
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'gridwork-changes' AND pid <> pg_backend_pid()"
        )
        async with world.engine.connect() as connection:
            await connection.execute(text(terminate))
        reported = await api.report()  # while the feed is not listening, or after
        told = await feed.after(newest, 30)
        assert told in await _history_ids(world, reported["id"])
        assert await _listeners(world) == 1  # this feed's, listening again
    finally:
        await feed.close()
