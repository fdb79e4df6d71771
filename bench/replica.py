"""Reads on a streaming replica under load (docs/scaling.md).

Makes a primary and a hot standby on local ports (`tests/pg_cluster.py`), fills the primary
with the generated district (800 grids, N tickets), and serves Gridwork twice under wrk: on the
primary alone, then with GRIDWORK_DATABASE_REPLICA_URL naming the standby. Each run measures
ticket lists, statistics, a ticket's page and the mix of reads and reports, and counts the
transactions each server ran. Then, under a steady load of statistics, it stops the standby and
starts it again, and reports how long requests failed and when reads returned to it.

    .venv/bin/python -m bench.replica [--tickets 1000000] [--duration 10] [--connections 50]
        [--workers 2]
"""

import argparse
import asyncio
import contextlib
import json
import os
import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from alembic import command

from app.cli import alembic_config
from bench.district import connect, fill_district
from bench.load.run import (
    GRIDWORK_PORT,
    READS,
    RESULTS,
    SECRET,
    VENV_BIN,
    Figure,
    Server,
    figure,
    grid_workers,
    load_options,
    table,
    token,
    wrk,
)
from tests.pg_cluster import Cluster, primary_and_standby

SCENARIOS = {name: READS[name] for name in READS}
STATS = READS["stats: district year by month"][0]
TRANSACTIONS = "SELECT xact_commit FROM pg_stat_database WHERE datname = 'gridwork'"
READERS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gridwork-reads'"


async def transactions(cluster: Cluster) -> int:
    conn = await connect(cluster.url("gridwork"))
    try:
        return int(await conn.fetchval(TRANSACTIONS))
    finally:
        await conn.close()


async def caught_up(standby: Cluster) -> None:
    conn = await connect(standby.url("postgres"))
    try:
        replayed = "SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"
        while not await conn.fetchval(replayed):  # noqa: ASYNC110 (another server's state)
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def serve(primary: Cluster, standby: Cluster | None, workers: int) -> Server:
    env = {
        "GRIDWORK_DATABASE_URL": primary.url("gridwork"),
        "GRIDWORK_SECRET_KEY": SECRET,
        "GRIDWORK_ENV": "production",
        "GRIDWORK_ACCESS_TOKEN_MINUTES": "180",
        "GRIDWORK_DATABASE_REPLICA_URL": standby.url("gridwork") if standby else "",
    }
    command = [str(VENV_BIN / "gridwork"), "serve", "--port", str(GRIDWORK_PORT)]
    return Server([*command, "--workers", str(workers)], GRIDWORK_PORT, "/readyz", env)


async def load_figures(
    primary: Cluster, standby: Cluster, replica: bool, args: argparse.Namespace
) -> list[Figure]:
    label = "with the replica" if replica else "primary alone"
    server = serve(primary, standby if replica else None, args.workers)
    district = token("district")
    figures = []
    try:
        for paths in SCENARIOS.values():  # warm caches and plans
            wrk("read.lua", GRIDWORK_PORT, args, BENCH_TOKEN=district, BENCH_PATHS="|".join(paths))
        scenarios: list[tuple[str, str, dict[str, str]]] = [
            (name, "read.lua", {"BENCH_TOKEN": district, "BENCH_PATHS": "|".join(paths)})
            for name, paths in SCENARIOS.items()
        ]
        mixed_paths = "|".join(p for paths in SCENARIOS.values() for p in paths[:3])
        scenarios.append(
            (
                "mixed: 70% reads, 30% reports",
                "mixed.lua",
                {
                    "BENCH_WORKERS": grid_workers(200),
                    "BENCH_TOKEN": district,
                    "BENCH_PATHS": mixed_paths,
                },
            )
        )
        for name, script, env in scenarios:
            before = await transactions(primary), await transactions(standby)
            raw = wrk(script, GRIDWORK_PORT, args, **env)
            after = await transactions(primary), await transactions(standby)
            result = figure(f"{name} ({label})", args.workers, raw)
            on_primary, on_standby = after[0] - before[0], after[1] - before[1]
            result.details = {
                "primary_transactions": on_primary,
                "standby_transactions": on_standby,
            }
            print(f"    transactions: primary {on_primary:,}, standby {on_standby:,}")
            figures.append(result)
    finally:
        server.stop()
    return figures


async def fallback(primary: Cluster, standby: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    """Statistics requested without pause by 20 clients while the standby stops and starts."""
    server = serve(primary, standby, args.workers)
    headers = {"Authorization": f"Bearer {token('district')}"}
    outcomes: list[tuple[float, int]] = []
    stop_at, start_at, end_at = 5.0, 15.0, 30.0
    began = time.monotonic()

    async def client(http: httpx.AsyncClient) -> None:
        while (now := time.monotonic() - began) < end_at:
            try:
                status = (await http.get(STATS, headers=headers)).status_code
            except httpx.HTTPError:
                status = 0
            outcomes.append((now, status))

    read_again: list[float] = []  # when the standby, restarted, had the app's reads again

    async def watch_standby() -> None:
        while (now := time.monotonic() - began) < end_at and not read_again:
            if now > start_at and standby.running:
                with contextlib.suppress(OSError, asyncpg.PostgresError):  # still starting
                    conn = await connect(standby.url("postgres"))
                    try:
                        if await conn.fetchval(READERS):
                            read_again.append(now)
                    finally:
                        await conn.close()
            await asyncio.sleep(0.1)

    try:
        base = f"http://127.0.0.1:{GRIDWORK_PORT}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            tasks = [asyncio.create_task(client(http)) for _ in range(20)]
            tasks.append(asyncio.create_task(watch_standby()))
            await asyncio.sleep(stop_at)
            stopping = time.monotonic() - began
            await asyncio.to_thread(standby.stop)
            stopped = time.monotonic() - began
            await asyncio.sleep(start_at - stopped)
            await asyncio.to_thread(standby.start)
            started = time.monotonic() - began
            await asyncio.gather(*tasks)
    finally:
        server.stop()
    failures = [at for at, status in outcomes if status != 200]
    return {
        "requests": len(outcomes),
        "failed": len(failures),
        "first_failure_after_stop_s": round(min(failures) - stopping, 2) if failures else None,
        "last_failure_after_stop_s": round(max(failures) - stopping, 2) if failures else None,
        "stop_took_s": round(stopped - stopping, 2),
        "read_again_after_start_s": round(read_again[0] - started, 2) if read_again else None,
    }


async def main() -> None:
    parser = load_options(__doc__)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--only-fallback", action="store_true", help="skip the load runs")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    with primary_and_standby() as (primary, standby):
        admin = await connect(primary.url())
        await admin.execute("CREATE DATABASE gridwork")
        await admin.close()
        await asyncio.to_thread(command.upgrade, alembic_config(primary.url("gridwork")), "head")
        await fill_district(primary.url("gridwork"), args.tickets)
        rebuilt = await asyncio.create_subprocess_exec(
            str(VENV_BIN / "gridwork"),
            "stats",
            "rebuild",
            env=os.environ | {"GRIDWORK_DATABASE_URL": primary.url("gridwork")},
        )
        if await rebuilt.wait():
            raise RuntimeError("gridwork stats rebuild failed")
        await caught_up(standby)
        figures = []
        if not args.only_fallback:
            figures = await load_figures(primary, standby, False, args)
            figures += await load_figures(primary, standby, True, args)
            print(table(figures))
        outage = await fallback(primary, standby, args)
        print("standby stopped and started under load:", outage)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = {
        "at": stamp,
        "setup": vars(args),
        "figures": [asdict(f) for f in figures],
        "fallback": outage,
    }
    (RESULTS / f"replica-{stamp}.json").write_text(json.dumps(document, indent=2))
    transactions_table = "\n".join(
        f"| {f.scenario} | {f.details['primary_transactions']:,} |"
        f" {f.details['standby_transactions']:,} |"
        for f in figures
    )
    (RESULTS / f"replica-{stamp}.md").write_text(
        f"# Replica benchmark {stamp}\n\n{json.dumps(vars(args))}\n\n{table(figures)}\n\n"
        "| scenario | primary transactions | standby transactions |\n|---|---:|---:|\n"
        f"{transactions_table}\n\nStandby stopped and started under load: {json.dumps(outage)}\n"
    )
    print(f"\nwritten bench/results/replica-{stamp}.json and .md")


if __name__ == "__main__":
    asyncio.run(main())
