"""Reads on a streaming replica (`app/replicas.py`), on real clusters: a primary and a hot
standby made by `pg_basebackup -R` on local ports of their own (`tests/pg_cluster.py`).
Statistics and lists are read on the standby, writes and the writer's next reads on the
primary; reads fall back to the primary when the standby stops or its replay is paused, and
return when it recovers."""

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from app.config import Settings
from app.console.changes import ChangeFeed
from app.db import DEFAULT_TIMEZONE, Database
from app.demo import seed_demo
from app.main import create_app
from app.replicas import Replica
from app.stats import rollups
from tests.conftest import START, TEST_SECRET, migrate
from tests.helpers import Api, listen_on_the_wire
from tests.pg_cluster import Cluster, primary_and_standby, server_binaries

MAX_LAG_SECONDS = 1.0
STATS = "/api/v1/stats/closure?from=2026-11-23&to=2026-11-24&org_unit=NH"
# How long replication may take to do what a test waits for (it takes milliseconds here).
PATIENCE_SECONDS = 30.0

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL", "").startswith("postgresql"),
    reason="runs in the PostgreSQL pass of the suite",
)


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple[Cluster, Cluster]]:
    if server_binaries() is None:
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl, pg_basebackup) are missing")
    with primary_and_standby() as pair:
        yield pair


def _connect_args(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    return {
        "host": parsed.host,
        "port": parsed.port,
        "user": "postgres",
        "database": parsed.database,
    }


async def _sql(url: str, query: str) -> Any:
    connection = await asyncpg.connect(**_connect_args(url))
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> float:
    """Waits for replication to make `condition` true; returns the seconds it took."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > PATIENCE_SECONDS:
            raise AssertionError(f"not within {PATIENCE_SECONDS} s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture(scope="module")
async def database(clusters: tuple[Cluster, Cluster]) -> AsyncIterator[Database]:
    primary, standby = clusters
    await _sql(primary.url(), "CREATE DATABASE gridwork")
    await migrate(primary.url("gridwork"))
    db = Database(
        primary.url("gridwork"),
        pool_size=4,
        replica_urls=[standby.url("gridwork")],
        replica_max_lag_seconds=MAX_LAG_SECONDS,
    )
    async with db.sessions() as session:
        await rollups.rebuild(session, DEFAULT_TIMEZONE)
        await seed_demo(session, START)
        await session.commit()
    yield db
    await db.dispose()


@pytest.fixture
async def api(database: Database, clusters: tuple[Cluster, Cluster]) -> AsyncIterator[Api]:
    primary, _ = clusters
    settings = Settings(env="test", database_url=primary.url("gridwork"), secret_key=TEST_SECRET)
    app = create_app(settings, database=database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridwork.test") as client:
        yield Api(client)


@pytest.fixture
async def replica(database: Database, clusters: tuple[Cluster, Cluster]) -> Replica:
    """The standby, running, caught up and in use."""
    _, standby = clusters
    if not standby.running:
        standby.start()
    await _sql(standby.url(), "SELECT pg_wal_replay_resume()")
    replicas = database.replicas

    async def in_use() -> bool:
        await replicas.check()
        return replicas.replicas[0].in_use and replicas.replicas[0].lag == 0

    await _until(in_use, "the standby is in use")
    replicas.monotonic = time.monotonic
    return replicas.replicas[0]


class Statements:
    """Counts the queries sent on a replica's connections."""

    def __init__(self, replica: Replica) -> None:
        self.count = 0
        listen_on_the_wire([replica.engine], self._count)

    def _count(self, _: str) -> None:
        self.count += 1

    async def of(self, request: Awaitable[httpx.Response]) -> tuple[httpx.Response, int]:
        before = self.count
        response = await request
        return response, self.count - before


async def test_statistics_and_lists_are_read_on_the_standby(
    api: Api, replica: Replica, clusters: tuple[Cluster, Cluster]
) -> None:
    _primary, standby = clusters
    statements = Statements(replica)
    for path in (STATS, "/api/v1/tickets"):
        response, on_replica = await statements.of(api.get(path, "supervisor"))
        assert response.status_code == 200, response.text
        assert on_replica >= 2  # the caller and the figures
    reading = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gridwork-reads'"
    assert await _sql(standby.url(), reading) >= 1
    # A ticket's own page is read on the primary: it must show the caller's last action.
    response, on_replica = await statements.of(api.get("/api/v1/tickets/1", "supervisor"))
    assert response.status_code in (200, 404)
    assert on_replica == 0
    # So are a grid worker's lists, the phone's own reports, written through any process.
    response, on_replica = await statements.of(api.get("/api/v1/tickets", "worker"))
    assert response.status_code == 200
    assert on_replica == 0


async def test_writes_go_to_the_primary_and_the_writer_reads_them_there(
    api: Api, replica: Replica, database: Database, clusters: tuple[Cluster, Cluster]
) -> None:
    primary, standby = clusters
    statements = Statements(replica)
    now = [1000.0]
    database.replicas.monotonic = lambda: now[0]
    await replica_caught_up(standby)
    await _sql(standby.url(), "SELECT pg_wal_replay_pause()")  # the standby misses the write
    ticket = await api.report()
    query = f"SELECT count(*) FROM tickets WHERE id = {ticket['id']}"
    assert await _sql(primary.url("gridwork"), query) == 1

    # The dispatcher acts, and reads right after: on the primary, the action shown.
    acted = await api.act(ticket["id"], "request_check", "dispatcher")
    assert acted.status_code == 200, acted.text
    listing, on_replica = await statements.of(api.get("/api/v1/tickets", "dispatcher"))
    assert on_replica == 0
    assert ticket["id"] in [item["id"] for item in listing.json()["items"]]
    # Someone who has not written reads the standby, which has not replayed the report yet.
    listing, on_replica = await statements.of(api.get("/api/v1/tickets", "town_dispatcher"))
    assert on_replica >= 1
    assert ticket["id"] not in [item["id"] for item in listing.json()["items"]]
    # Once the window of the writer's own reads has passed, they read the standby too.
    now[0] += MAX_LAG_SECONDS + 0.1
    _, on_replica = await statements.of(api.get("/api/v1/tickets", "dispatcher"))
    assert on_replica >= 1
    await _sql(standby.url(), "SELECT pg_wal_replay_resume()")


async def replica_caught_up(standby: Cluster) -> None:
    async def replayed() -> bool:
        lag = await _sql(
            standby.url(),
            "SELECT pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()",
        )
        return bool(lag)

    await _until(replayed, "the standby has replayed what it received")


async def test_reads_fall_back_while_replay_is_paused_and_return_after(
    api: Api, replica: Replica, database: Database, clusters: tuple[Cluster, Cluster]
) -> None:
    _, standby = clusters
    statements = Statements(replica)
    await _sql(standby.url(), "SELECT pg_wal_replay_pause()")
    await api.report()  # received by the standby, not replayed

    async def out_of_use() -> bool:
        await database.replicas.check()
        return not replica.in_use

    await _until(out_of_use, "the paused standby falls behind by more than the limit")
    assert replica.lag is not None and replica.lag > MAX_LAG_SECONDS
    response, on_replica = await statements.of(api.get(STATS, "supervisor"))
    assert response.status_code == 200
    assert on_replica == 0
    metrics = (await api.client.get("/metrics")).text
    assert 'gridwork_replica_in_use{replica="127.0.0.1:' in metrics
    assert f'gridwork_replica_in_use{{replica="{replica.name}"}} 0.0' in metrics

    await _sql(standby.url(), "SELECT pg_wal_replay_resume()")

    async def back() -> bool:
        await database.replicas.check()
        return replica.in_use

    await _until(back, "the standby is read again once it has caught up")
    _, on_replica = await statements.of(api.get(STATS, "supervisor"))
    assert on_replica >= 1


async def test_consoles_hear_of_a_change_once_the_standby_has_replayed_it(
    api: Api, replica: Replica, database: Database, clusters: tuple[Cluster, Cluster]
) -> None:
    """A console reloads its lists and figures from the standby after each event: the event
    waits for the standby, up to the lag allowed."""
    _, standby = clusters
    feed = ChangeFeed(database, check_seconds=0.2)
    try:
        seen = await feed.refresh()
        assert await feed.after(seen, 0.01) == seen  # listening
        await _sql(standby.url(), "SELECT pg_wal_replay_pause()")
        reported = await api.report()
        assert await feed.after(seen, MAX_LAG_SECONDS / 2) == seen  # not replayed: not told
        await _sql(standby.url(), "SELECT pg_wal_replay_resume()")
        told = await feed.after(seen, PATIENCE_SECONDS)
        query = f"SELECT max(id) FROM ticket_history WHERE ticket_id = {reported['id']}"
        assert told == await _sql(standby.url("gridwork"), query)
    finally:
        await feed.close()


async def test_reads_fall_back_when_the_standby_stops_and_return_when_it_is_back(
    api: Api, replica: Replica, database: Database, clusters: tuple[Cluster, Cluster]
) -> None:
    _, standby = clusters
    statements = Statements(replica)
    response, on_replica = await statements.of(api.get(STATS, "supervisor"))
    assert response.status_code == 200 and on_replica >= 1  # a pooled connection to it
    standby.stop()
    # The request that finds the connection dead fails; it takes the replica out of use.
    first = await api.get(STATS, "supervisor")
    assert first.status_code in (200, 503), first.text
    assert not replica.in_use
    response, on_replica = await statements.of(api.get(STATS, "supervisor"))
    assert response.status_code == 200
    assert on_replica == 0
    await database.replicas.check()
    assert not replica.in_use and replica.lag is None
    metrics = (await api.client.get("/metrics")).text
    assert f'gridwork_replica_lag_seconds{{replica="{replica.name}"}} NaN' in metrics

    standby.start()

    async def back() -> bool:
        await database.replicas.check()
        return replica.in_use

    await _until(back, "the restarted standby is read again")
    response, on_replica = await statements.of(api.get(STATS, "supervisor"))
    assert response.status_code == 200
    assert on_replica >= 1


async def test_a_standby_unreachable_from_the_start_leaves_reads_on_the_primary(
    clusters: tuple[Cluster, Cluster],
) -> None:
    primary, _ = clusters
    nowhere = primary.url("gridwork").replace(f":{primary.port}/", ":1/")
    database = Database(primary.url("gridwork"), pool_size=2, replica_urls=[nowhere])
    try:
        await database.replicas.check()
        assert database.replicas.choose(None) is None
        assert database.replicas.replicas[0].lag is None
    finally:
        await database.dispose()


async def test_a_standby_cut_off_from_its_primary_is_not_read_until_it_streams_again(
    api: Api, replica: Replica, database: Database, clusters: tuple[Cluster, Cluster]
) -> None:
    """What a standby cut off has received stays what it has replayed: without a receiver
    running, its lag cannot be known, and it is not read."""
    primary, _ = clusters
    primary.stop()
    try:

        async def out_of_use() -> bool:
            await database.replicas.check()
            return not replica.in_use

        await _until(out_of_use, "the standby without its primary is left")
        assert replica.lag is None
    finally:
        primary.start()
        for engine in (database.engine, database.reader):  # their connections died with it
            await engine.dispose()

    async def back() -> bool:
        await database.replicas.check()
        return replica.in_use

    await _until(back, "the standby streaming again is read again")
    response = await api.get(STATS, "supervisor")
    assert response.status_code == 200
