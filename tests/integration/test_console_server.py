"""What the app serves for the console besides the API: its page and assets, its settings, and
the stream of ticket changes (in process; the browser tests are in test_console.py)."""

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.main import create_app
from app.tickets.models import TicketHistory
from tests.helpers import Api


async def test_the_page_and_its_vendored_assets_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/console")
    assert page.status_code == 200 and 'type="module"' in page.text
    for asset in (
        "/console/static/app.js",
        "/console/static/i18n.js",
        "/console/static/app.css",
        "/console/static/vendor/leaflet/leaflet.js",
        "/console/static/vendor/chartjs/chart.umd.min.js",
    ):
        assert (await client.get(asset)).status_code == 200, asset
    assert "https://" not in page.text  # nothing fetched from elsewhere
    assert (await client.get("/console/static/nothing.js")).status_code == 404


async def test_settings_give_the_tiles_and_the_service_day(
    world: Database, settings: Settings, clock: FrozenClock
) -> None:
    tiles = "https://tiles.example.org/{z}/{x}/{y}.png"
    with_tiles = settings.model_copy(update={"map_tiles_url": tiles})
    app = create_app(with_tiles, database=world, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
        config = (await client.get("/console/config.json")).json()
    assert config["map_tiles_url"] == tiles
    assert config["today"] == "2026-11-23"  # the clock's day in Asia/Shanghai


async def test_the_stream_needs_a_valid_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/console/stream")).status_code == 422
    refused = await client.get("/console/stream", params={"token": "not-a-token"})
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")


async def test_the_stream_tells_of_changes(
    world: Database, settings: Settings, clock: FrozenClock
) -> None:
    quick = settings.model_copy(
        update={"console_stream_seconds": 0.3, "console_check_seconds": 0.05}
    )
    app: FastAPI = create_app(quick, database=world, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console.test") as client:
        api = Api(client)
        token = (await api.headers("dispatcher"))["Authorization"].removeprefix("Bearer ")
        quiet = await client.get("/console/stream", params={"token": token})
        assert quiet.headers["content-type"].startswith("text/event-stream")
        assert quiet.text.count("event: tickets") == 1  # the first look, then nothing new
        await api.report()
        changed = await client.get("/console/stream", params={"token": token})
        seen = {"Last-Event-ID": str(latest := await _latest_change(world))}
        caught_up = await client.get("/console/stream", params={"token": token}, headers=seen)
        worker = (await api.headers("worker"))["Authorization"].removeprefix("Bearer ")
        refused = await client.get("/console/stream", params={"token": worker})
    assert changed.text.count("event: tickets") == 1
    assert f"id: {latest}\n" in changed.text and f"id: {latest}\n" not in quiet.text
    assert "event: tickets" not in caught_up.text  # a reconnection having seen the newest
    assert refused.status_code == 403


async def _latest_change(database: Database) -> int:
    async with database.sessions() as session:
        return await session.scalar(select(func.max(TicketHistory.id))) or 0
