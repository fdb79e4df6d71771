"""Webhook notifications through the outbox, against a real local HTTP receiver."""

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
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
    assert first["headers"]["X-Gridwork-Signature"] == signature(SECRET, first["body"])
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
