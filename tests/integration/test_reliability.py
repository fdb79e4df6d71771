"""Reliability under concurrency and faults, on PostgreSQL: duplicated resends, actors racing on
the same tickets, the database restarted under load, and a scheduler process killed with
SIGKILL mid-batch."""

import asyncio
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from app import db
from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.main import create_app
from app.tickets.machine import TRANSITIONS, Action, Status
from app.tickets.models import Ticket, TicketHistory
from tests.helpers import IN_DL01_1, IN_GC01_1, Api, count, event_body

pytestmark = pytest.mark.usefixtures("postgres_only")


def assert_legal_walk(history: list[dict[str, Any]], ticket: dict[str, Any]) -> None:
    """Each change starts where the previous one ended, by a transition the machine allows,
    and the version counted every change."""
    assert history[0]["action"] == "report"
    for before, row in itertools.pairwise(history):
        assert row["from_status"] == before["to_status"], [
            (h["action"], h["from_status"], h["to_status"], h["actor"]) for h in history
        ]
        if row["action"] in Action.__members__.values():
            rule = TRANSITIONS[(Status(row["from_status"]), Action(row["action"]))]
            assert Status(row["to_status"]) in rule.targets(Status(row["from_status"])), row
    assert history[-1]["to_status"] == ticket["status"]
    assert ticket["version"] == len(history)


async def test_resent_reports_racing_file_each_ticket_once(api: Api, world: Database) -> None:
    unique = [("worker", event_body()) for _ in range(100)] + [
        ("worker2", event_body(at=IN_DL01_1)) for _ in range(50)
    ]
    resent = random.Random(7).sample(unique, 50)
    for user in ("worker", "worker2"):
        await api.headers(user)

    responses = await asyncio.gather(
        *(api.post("/api/v1/events", user, body) for user, body in [*unique, *resent])
    )

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 150, 200: 50}, statuses
    assert await count(world, Ticket) == 150
    assert len({r.json()["id"] for r in responses}) == 150  # each resend got its first ticket


async def test_twenty_actors_racing_leave_legal_histories(api: Api) -> None:
    tickets = [(await api.report())["id"] for _ in range(6)]
    moves: list[tuple[str, str, dict[str, Any] | None]] = [
        ("dispatcher", "dispatch", {"department_code": "NH-CG"}),
        ("town_dispatcher", "dispatch", {"department_code": "NH-CG"}),
        ("handler", "claim", None),
        ("handler", "return", {"note": "不属于本部门"}),
        ("handler", "suspend", {"note": "等待配件"}),
        ("handler", "resume", {"note": "配件到了"}),
        ("handler", "feedback", {"note": "已处理"}),
        ("dispatcher", "verify", {"passed": False}),
        ("worker", "verify", {"passed": True}),
        ("dispatcher", "escalate", {"note": "需要街道协调"}),
    ]
    for user in {user for user, _, _ in moves}:
        await api.headers(user)
    seen: Counter[int] = Counter()

    async def actor(seed: int) -> None:
        chance = random.Random(seed)
        for _ in range(12):
            user, action, body = chance.choice(moves)
            response = await api.act(chance.choice(tickets), action, user, body)
            seen[response.status_code] += 1

    await asyncio.gather(*(actor(seed) for seed in range(20)))

    assert set(seen) <= {200, 403, 404, 409}, seen  # 404: escalated out of a dispatcher's reach
    assert seen[200] > 0, seen
    for tid in tickets:
        ticket = (await api.get(f"/api/v1/tickets/{tid}", "admin")).json()
        history = await api.get(f"/api/v1/tickets/{tid}/history?limit=500", "admin")
        assert_legal_walk(history.json()["items"], ticket)


def _cluster() -> list[str] | None:
    """pg_ctlcluster arguments for the local server, when this process may restart it."""
    tool = shutil.which("pg_ctlcluster")
    versions = sorted(Path("/etc/postgresql").glob("*/main")) if tool else []
    if not tool or not versions or os.geteuid() != 0:
        return None
    return [tool, "--skip-systemctl-redirect", versions[-1].parent.name, "main"]


@asynccontextmanager
async def _served_with_own_pool(
    settings: Settings, clock: FrozenClock
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app started with a connection pool of its own, as a server has."""
    app = create_app(settings, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gridwork.test") as client,
    ):
        yield client


async def _on_server(world: Database, query: str, *args: Any) -> Any:
    """The first value of `query`, on a connection of its own to the test database."""
    url = world.engine.url
    admin = await asyncpg.connect(
        host=url.host, port=url.port, user=url.username, database=url.database
    )
    try:
        return await admin.fetchval(query, *args)
    finally:
        await admin.close()


async def _drop_connections_opened_since(world: Database, since: datetime) -> int:
    """Closes, from the server's side, the connections to the test database opened after
    `since` (the app's own, not the fixtures')."""
    dropped: int = await _on_server(
        world,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND backend_start > $1",
        since,
    )
    return dropped


async def test_a_dropped_pooled_connection_fails_one_request_then_is_replaced(
    world: Database, settings: Settings, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    since = await _on_server(world, "SELECT clock_timestamp()")
    async with _served_with_own_pool(settings, clock) as client:
        api = Api(client)
        assert (await api.get("/api/v1/users/me", "dispatcher")).status_code == 200

        # Used again at once, a dropped connection is not pinged: its request gets 503, and
        # that discards the whole pool, so the next request connects afresh.
        assert await _drop_connections_opened_since(world, since) >= 1
        assert (await api.get("/api/v1/users/me", "dispatcher")).status_code == 503
        assert (await api.get("/api/v1/users/me", "dispatcher")).status_code == 200

        # After a while idle, a connection is pinged first and replaced when it is gone.
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        assert await _drop_connections_opened_since(world, since) >= 1
        assert (await api.get("/api/v1/users/me", "dispatcher")).status_code == 200


async def test_a_database_restart_under_load_loses_nothing(
    world: Database, settings: Settings, clock: FrozenClock
) -> None:
    cluster = _cluster()
    if cluster is None:
        pytest.skip("needs root and pg_ctlcluster to restart the local PostgreSQL")
    filed: dict[str, int] = {}
    refused: list[dict[str, Any]] = []
    statuses: Counter[int] = Counter()
    running = True

    async with _served_with_own_pool(settings, clock) as client:
        api = Api(client)
        headers = await api.headers("worker")

        async def reporter() -> None:
            while running:
                body = event_body()
                response = await client.post("/api/v1/events", json=body, headers=headers)
                statuses[response.status_code] += 1
                if response.status_code == 201:
                    filed[body["client_id"]] = response.json()["id"]
                elif response.status_code == 503:
                    refused.append(body)

        async def until(condition: Any, what: str) -> None:
            deadline = time.monotonic() + 60
            while not condition():
                assert time.monotonic() < deadline, f"timed out waiting for {what}: {statuses}"
                await asyncio.sleep(0.05)

        load = [asyncio.create_task(reporter()) for _ in range(5)]
        try:
            await until(lambda: statuses[201] >= 20, "reports before the restart")
            await asyncio.to_thread(subprocess.run, [*cluster, "stop", "--", "-m", "fast"])
            await until(lambda: statuses[503] >= 5, "503s while the database is down")
        finally:  # whatever happened, the server runs again
            await asyncio.to_thread(subprocess.run, [*cluster, "start"], check=True)
        try:
            before = statuses[201]
            await until(lambda: statuses[201] >= before + 20, "reports after the restart")
        finally:
            running = False
            await asyncio.gather(*load)
        # A commit may have landed just before its connection died and been answered 503:
        # the phone resends, and gets its ticket either way.
        for body in refused:
            resent = await client.post("/api/v1/events", json=body, headers=headers)
            assert resent.status_code in (200, 201), resent.text
            filed[body["client_id"]] = resent.json()["id"]

    await world.engine.dispose()  # its pooled connections died with the server
    assert set(statuses) <= {201, 503}, statuses
    async with world.sessions() as session:
        stored = dict((await session.execute(select(Ticket.client_id, Ticket.id))).all())
    assert {str(k): v for k, v in stored.items()} == filed  # every answer stored, nothing else


def _worker(settings: Settings, batch: int) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "GRIDWORK_DATABASE_URL": settings.database_url,
        "GRIDWORK_SECRET_KEY": settings.secret_key,
        "GRIDWORK_SCHEDULER_BATCH_SIZE": str(batch),
        "GRIDWORK_SCHEDULER_INTERVAL_SECONDS": "1",
    }
    command = [str(Path(sys.executable).parent / "gridwork"), "worker"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


async def file_due_reports(world: Database, settings: Settings, count: int) -> None:
    """Reports filed two hours ago: their dispatch limit (60 minutes) has passed by the real
    clock a worker process runs on."""
    filed_at = FrozenClock(datetime.now(UTC) - timedelta(hours=2))
    app = create_app(settings, database=world, clock=filed_at)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gridwork.test"
    ) as client:
        api = Api(client)
        await api.headers("worker")
        for _ in range(count // 50):
            await asyncio.gather(*(api.report(at=IN_GC01_1) for _ in range(50)))


async def wait_for_escalations(world: Database, condition: Any, what: str) -> int:
    """Polls the number of escalations until `condition` holds (a worker process is working)."""
    deadline = time.monotonic() + 90
    while True:
        try:
            async with world.sessions() as session:
                done = int(
                    await session.scalar(
                        select(func.count()).where(TicketHistory.action == "escalate")
                    )
                    or 0
                )
        except (OSError, DBAPIError):  # the server is down for a moment: ask again
            done = -1
        if done >= 0 and condition(done):
            return done
        assert time.monotonic() < deadline, f"timed out waiting for {what} ({done})"
        await asyncio.sleep(0.02)


async def assert_each_escalated_once(world: Database, count: int) -> None:
    async with world.sessions() as session:
        per_ticket = Counter(
            (
                await session.scalars(
                    select(TicketHistory.ticket_id).where(TicketHistory.action == "escalate")
                )
            ).all()
        )
        levels = Counter((await session.scalars(select(Ticket.level))).all())
        counts = set((await session.scalars(select(Ticket.escalation_count))).all())
    assert len(per_ticket) == count and set(per_ticket.values()) == {1}
    assert levels == {"town": count} and counts == {1}


async def test_a_scheduler_killed_mid_batch_escalates_each_ticket_once(
    world: Database, settings: Settings
) -> None:
    await file_due_reports(world, settings, 400)

    first = _worker(settings, batch=10)
    try:
        await wait_for_escalations(world, lambda n: n > 0, "the first batch")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    at_kill = await wait_for_escalations(world, lambda n: True, "the count after the kill")
    assert at_kill < 400, "the worker finished before it could be killed"
    second = _worker(settings, batch=10)
    try:
        await wait_for_escalations(world, lambda n: n >= 400, "every ticket")
    finally:
        _stop(second)

    await assert_each_escalated_once(world, 400)


async def test_a_database_restart_mid_escalation_doubles_nothing(
    world: Database, settings: Settings
) -> None:
    cluster = _cluster()
    if cluster is None:
        pytest.skip("needs root and pg_ctlcluster to restart the local PostgreSQL")
    await file_due_reports(world, settings, 300)

    worker = _worker(settings, batch=1)  # one ticket a transaction: slow enough to interrupt
    try:
        await wait_for_escalations(world, lambda n: n > 0, "the first escalations")
        before = await wait_for_escalations(world, lambda n: True, "the count before the stop")
        try:
            await asyncio.to_thread(subprocess.run, [*cluster, "stop", "--", "-m", "fast"])
        finally:
            await asyncio.to_thread(subprocess.run, [*cluster, "start"], check=True)
        await world.engine.dispose()  # its pooled connections died with the server
        await wait_for_escalations(world, lambda n: n >= 300, "every ticket after the restart")
    finally:
        _stop(worker)

    assert before < 300, "the worker finished before the restart"
    await assert_each_escalated_once(world, 300)
