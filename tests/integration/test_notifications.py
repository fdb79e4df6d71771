"""Webhook notifications through the outbox, against a real local HTTP receiver."""

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.notifications.models import OutboxMessage
from app.notifications.service import deliver_due, signature
from app.tickets.scheduler import run_pass
from tests.helpers import Api

SECRET = "webhook-test-secret"


class Receiver:
    """An HTTP server in a thread that records what it is sent and answers with the statuses
    queued in `answers` (then 200)."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[dict[str, Any]] = []
        self.answers: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/gridwork"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[str]:
        return [json.loads(r["body"])["type"] for r in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def settings(database: Database, receiver: Receiver) -> Settings:
    return Settings(
        env="test",
        database_url=database.url,
        secret_key="s" * 40,
        access_token_minutes=60 * 24 * 365,
        webhook_urls=receiver.url,
        webhook_secret=SECRET,
    )


async def deliver(world: Database, settings: Settings, clock: FrozenClock) -> tuple[int, int]:
    async with httpx.AsyncClient(timeout=5) as client:
        return await deliver_due(world, settings, client, clock.now())


async def test_events_reach_the_receiver_signed(
    api: Api, world: Database, settings: Settings, clock: FrozenClock, receiver: Receiver
) -> None:
    tid = (await api.ticket_in("dispatched"))["id"]
    clock.advance(timedelta(hours=4))
    await run_pass(world, settings, clock.now())

    assert await deliver(world, settings, clock) == (4, 0)

    assert sorted(receiver.events()) == [  # posted in parallel: in no particular order
        "ticket.dispatched",
        "ticket.escalated",
        "ticket.overdue",
        "ticket.warned",
    ]
    first = next(r for r in receiver.received if b"ticket.dispatched" in r["body"])
    payload = json.loads(first["body"])
    assert payload["ticket"]["id"] == tid and payload["ticket"]["number"].startswith("NH-")
    timestamp = first["headers"]["X-Gridwork-Timestamp"]
    assert timestamp == str(int(clock.now().timestamp()))  # when it was posted
    assert first["headers"]["X-Gridwork-Signature"] == signature(
        SECRET, int(timestamp), first["body"]
    )
    signed = f"{timestamp}.".encode() + first["body"]  # what a receiver recomputes
    expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert first["headers"]["X-Gridwork-Signature"] == f"sha256={expected}"
    assert first["headers"]["X-Gridwork-Event"] == "ticket.dispatched"
    assert await deliver(world, settings, clock) == (0, 0)  # delivered once


async def test_a_receiver_that_fails_gets_retried_with_backoff(
    api: Api, world: Database, settings: Settings, clock: FrozenClock, receiver: Receiver
) -> None:
    await api.ticket_in("dispatched")
    receiver.answers = [503, 500]

    assert await deliver(world, settings, clock) == (0, 1)
    assert await deliver(world, settings, clock) == (0, 0)  # not due again yet
    clock.advance(timedelta(seconds=5))
    assert await deliver(world, settings, clock) == (0, 1)
    clock.advance(timedelta(seconds=9))
    assert await deliver(world, settings, clock) == (0, 0)  # the second wait is 10 s
    clock.advance(timedelta(seconds=1))
    assert await deliver(world, settings, clock) == (1, 0)

    ids = {json.loads(r["body"])["event_id"] for r in receiver.received}
    assert len(receiver.received) == 3 and len(ids) == 1  # the same event, resent
    async with world.sessions() as session:
        message = (await session.scalars(select(OutboxMessage))).one()
    assert (message.attempts, message.last_error) == (3, None)
    assert message.delivered_at is not None


async def test_nothing_is_lost_while_the_receiver_is_down(
    api: Api, world: Database, settings: Settings, clock: FrozenClock, receiver: Receiver
) -> None:
    receiver.close()  # the port now refuses connections
    await api.ticket_in("dispatched")
    assert await deliver(world, settings, clock) == (0, 1)
    async with world.sessions() as session:
        message = (await session.scalars(select(OutboxMessage))).one()
    assert "Connect" in (message.last_error or "")

    back = Receiver(port=receiver.server.server_port)  # up again, at the same address
    try:
        clock.advance(timedelta(minutes=1))
        assert await deliver(world, settings, clock) == (1, 0)
        assert back.events() == ["ticket.dispatched"]
    finally:
        back.close()


async def test_no_webhooks_configured_writes_no_outbox(
    api: Api, world: Database, settings: Settings
) -> None:
    settings.webhook_urls = ""
    await api.ticket_in("dispatched")
    async with world.sessions() as session:
        assert (await session.scalars(select(OutboxMessage))).all() == []


def test_webhook_urls_without_a_secret_refuse_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDWORK_WEBHOOK_URLS", "https://receiver.example/hooks")
    monkeypatch.delenv("GRIDWORK_WEBHOOK_SECRET", raising=False)
    with pytest.raises(ValidationError, match="GRIDWORK_WEBHOOK_SECRET must be set"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("GRIDWORK_WEBHOOK_SECRET", "short")
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("GRIDWORK_WEBHOOK_SECRET", SECRET)
    assert Settings(_env_file=None).webhook_secret == SECRET  # type: ignore[call-arg]
    monkeypatch.delenv("GRIDWORK_WEBHOOK_URLS")
    monkeypatch.delenv("GRIDWORK_WEBHOOK_SECRET")
    assert Settings(_env_file=None).webhook_url_list == []  # type: ignore[call-arg]


async def dead_letters(api: Api, as_: str = "admin", query: str = "") -> httpx.Response:
    return await api.get(f"/api/v1/webhooks/dead-letters{query}", as_)


async def test_a_message_failing_too_often_is_a_dead_letter_admins_see_and_retry(
    api: Api, world: Database, settings: Settings, clock: FrozenClock, receiver: Receiver
) -> None:
    settings.webhook_max_attempts = 3
    await api.ticket_in("dispatched")
    receiver.answers = [500, 502, 503]
    for wait in (0, 5, 10):
        clock.advance(timedelta(seconds=wait))
        assert await deliver(world, settings, clock) == (0, 1)
    clock.advance(timedelta(days=1))
    assert await deliver(world, settings, clock) == (0, 0)  # given up: never posted again
    assert len(receiver.received) == 3

    listed = await dead_letters(api)
    assert listed.status_code == 200, listed.text
    (dead,) = listed.json()["items"]
    assert listed.json()["next_cursor"] is None
    assert (dead["event_type"], dead["attempts"], dead["url"]) == (
        "ticket.dispatched",
        3,
        receiver.url,
    )
    assert dead["last_error"].startswith("HTTP 503")
    assert dead["dead_at"] == "2026-11-23T02:00:15Z" and dead["delivered_at"] is None
    for user in ("dispatcher", "supervisor", "handler", "worker"):
        assert (await dead_letters(api, user)).status_code == 403
    assert (await api.client.get("/api/v1/webhooks/dead-letters")).status_code == 401

    retried = await api.post(f"/api/v1/webhooks/dead-letters/{dead['id']}/retry", "admin")
    assert retried.status_code == 200, retried.text
    assert (retried.json()["dead_at"], retried.json()["attempts"]) == (None, 0)
    assert (await dead_letters(api)).json()["items"] == []
    again = await api.post(f"/api/v1/webhooks/dead-letters/{dead['id']}/retry", "admin")
    assert again.status_code == 404
    assert await deliver(world, settings, clock) == (1, 0)
    assert receiver.events() == ["ticket.dispatched"] * 4  # the same event, resent
    forbidden = await api.post(f"/api/v1/webhooks/dead-letters/{dead['id']}/retry", "dispatcher")
    assert forbidden.status_code == 403


async def test_a_message_failing_past_the_maximum_age_is_a_dead_letter(
    api: Api, world: Database, settings: Settings, clock: FrozenClock, receiver: Receiver
) -> None:
    settings.webhook_max_age_hours = 1
    await api.ticket_in("dispatched")
    receiver.answers = [500, 500, 500]
    assert await deliver(world, settings, clock) == (0, 1)
    clock.advance(timedelta(minutes=59))
    assert await deliver(world, settings, clock) == (0, 1)  # still young enough: retried
    assert (await dead_letters(api)).json()["items"] == []
    clock.advance(timedelta(hours=1))
    assert await deliver(world, settings, clock) == (0, 1)  # too old: the last attempt
    clock.advance(timedelta(hours=2))
    assert await deliver(world, settings, clock) == (0, 0)
    (dead,) = (await dead_letters(api)).json()["items"]
    assert dead["attempts"] == 3


async def test_dead_letters_are_listed_in_pages_newest_first(
    api: Api, world: Database, settings: Settings, clock: FrozenClock, receiver: Receiver
) -> None:
    settings.webhook_max_attempts = 1
    for _ in range(3):
        await api.ticket_in("dispatched")
        receiver.answers = [500]
        assert await deliver(world, settings, clock) == (0, 1)
        clock.advance(timedelta(minutes=1))
    first = (await dead_letters(api, query="?limit=2")).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = (await dead_letters(api, query=f"?limit=2&cursor={first['next_cursor']}")).json()
    assert rest["next_cursor"] is None
    ids = [m["id"] for m in first["items"] + rest["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
