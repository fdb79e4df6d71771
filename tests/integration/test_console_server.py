"""What the app serves for the console besides the API: its page and assets, its settings, the
stream of ticket changes opened with a stream ticket, and the security headers of the console,
the field app and the API docs (in process; the browser tests are in test_console.py)."""

import base64
import hashlib
import re
from datetime import timedelta

import httpx
import jwt
from fastapi import FastAPI
from sqlalchemy import func, select

from app.auth.models import User
from app.clock import FrozenClock
from app.config import Settings
from app.console.router import issue_stream_ticket
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


async def _stream_ticket(client: httpx.AsyncClient, api: Api, username: str) -> str:
    issued = await client.post("/console/stream-ticket", headers=await api.headers(username))
    assert issued.status_code == 200, issued.text
    assert issued.json()["expires_in"] == 60
    ticket: str = issued.json()["ticket"]
    return ticket


async def test_the_stream_takes_a_stream_ticket_never_an_access_token(
    client: httpx.AsyncClient, api: Api, world: Database, clock: FrozenClock, settings: Settings
) -> None:
    """The access token stays out of URLs: the stream is opened with a ticket good for a
    minute and for nothing else, which the API refuses as a bearer token."""
    access = (await api.headers("dispatcher"))["Authorization"].removeprefix("Bearer ")
    assert (await client.get("/console/stream")).status_code == 422
    assert (await client.get("/console/stream", params={"token": access})).status_code == 422
    refused = await client.get("/console/stream", params={"ticket": access})
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/console/stream", params={"ticket": "x"})).status_code == 401
    assert (await client.post("/console/stream-ticket")).status_code == 401

    ticket = await _stream_ticket(client, api, "dispatcher")
    claims = jwt.decode(  # the clock is the service's, not the host's
        ticket, settings.secret_key, algorithms=["HS256"], options={"verify_exp": False}
    )
    assert claims["purpose"] == "stream" and claims["exp"] - claims["iat"] == 60
    as_bearer = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {ticket}"})
    assert as_bearer.status_code == 401  # not an access token
    forged = jwt.encode(
        {**claims, "purpose": "stream"},
        "not-the-service-key-but-long-enough-for-hs256",
        algorithm="HS256",
    )
    assert (await client.get("/console/stream", params={"ticket": forged})).status_code == 401

    clock.advance(timedelta(seconds=61))
    assert (await client.get("/console/stream", params={"ticket": ticket})).status_code == 401
    revoked = await _stream_ticket(client, api, "dispatcher")
    admin = await api.headers("admin")
    done = await client.post("/api/v1/users/dispatcher/revoke-tokens", headers=admin)
    assert done.status_code == 204
    assert (await client.get("/console/stream", params={"ticket": revoked})).status_code == 401

    # Grid workers have no console: no ticket, and a ticket made for one opens nothing.
    worker = await client.post("/console/stream-ticket", headers=await api.headers("worker"))
    assert worker.status_code == 403
    async with world.sessions() as session:
        user = await session.scalar(select(User).where(User.username == "worker"))
    made = issue_stream_ticket(settings.secret_key, user, clock.now())
    assert (await client.get("/console/stream", params={"ticket": made})).status_code == 403


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

        async def opened(**headers: str) -> httpx.Response:
            ticket = await _stream_ticket(client, api, "dispatcher")
            return await client.get("/console/stream", params={"ticket": ticket}, headers=headers)

        quiet = await opened()
        assert quiet.headers["content-type"].startswith("text/event-stream")
        assert quiet.text.count("event: tickets") == 1  # the first look, then nothing new
        await api.report()
        changed = await opened()
        caught_up = await opened(**{"Last-Event-ID": str(latest := await _latest_change(world))})
    await app.state.changes.close()
    assert changed.text.count("event: tickets") == 1
    assert f"id: {latest}\n" in changed.text and f"id: {latest}\n" not in quiet.text
    assert "event: tickets" not in caught_up.text  # a reconnection having seen the newest


def _policy(response: httpx.Response) -> dict[str, list[str]]:
    """The response's Content-Security-Policy, by directive."""
    directives = [d.split() for d in response.headers["content-security-policy"].split(";")]
    return {d[0]: d[1:] for d in directives if d}


PAGES_AND_FILES = [
    "/console",
    "/console/static/app.js",
    "/console/static/vendor/leaflet/leaflet.css",
    "/console/config.json",
    "/field/",
    "/field/static/app.js",
    "/field/sw.js",
    "/field/manifest.webmanifest",
    "/docs",
    "/redoc",
    "/docs/static/swagger-ui/swagger-ui-bundle.js",
    "/docs/static/redoc/redoc.standalone.js",
]


async def test_pages_and_their_files_carry_security_headers(client: httpx.AsyncClient) -> None:
    for path in PAGES_AND_FILES:
        response = await client.get(path)
        assert response.status_code == 200, path
        policy = _policy(response)
        assert policy["frame-ancestors"] == ["'none'"], path
        assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"], path
        scripts = policy["script-src"]
        assert scripts[0] == "'self'", path
        assert all(s.startswith("'sha256-") for s in scripts[1:]), path  # no unsafe-inline
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "strict-origin", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert "http" not in response.headers["content-security-policy"], path  # no tiles set
    console = _policy(await client.get("/console"))
    assert console["script-src"] == ["'self'"] and console["style-src"] == ["'self'"]
    assert console["img-src"] == ["'self'", "data:", "blob:"]  # Leaflet; photos as blobs
    field = _policy(await client.get("/field/"))
    assert field["script-src"] == ["'self'"] and field["worker-src"] == ["'self'"]

    # The API: nosniff, and no page policy.
    for path in ("/api/v1/users/me", "/healthz", "/openapi.json", "/open311/v2/services.json"):
        response = await client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert "content-security-policy" not in response.headers, path


async def test_the_docs_inline_script_is_allowed_by_its_hash_alone(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    scripts = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    assert len(scripts) == 1 and "SwaggerUIBundle" in scripts[0]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in _policy(page)["script-src"]
    assert "https://" not in page.text and "https://" not in (await client.get("/redoc")).text


async def test_the_map_pages_allow_the_configured_tile_server(
    world: Database, settings: Settings, clock: FrozenClock
) -> None:
    for tiles, source in (
        ("https://{s}.tiles.example.org/{z}/{x}/{y}.png", "https://*.tiles.example.org"),
        ("http://10.1.2.3:8080/tiles/{z}/{x}/{y}.png", "http://10.1.2.3:8080"),
        ("/tiles/{z}/{x}/{y}.png", None),  # the service's own: 'self'
    ):
        app = create_app(settings.model_copy(update={"map_tiles_url": tiles}), database=world)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as client:
            for path in ("/console", "/field/"):
                images = _policy(await client.get(path))["img-src"]
                assert images == ["'self'", "data:", "blob:", *([source] if source else [])]
            assert _policy(await client.get("/docs"))["img-src"] == ["'self'", "data:"]


async def _latest_change(database: Database) -> int:
    async with database.sessions() as session:
        return await session.scalar(select(func.max(TicketHistory.id))) or 0
