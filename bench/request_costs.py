"""What one request of each kind costs the app: SQL statements and milliseconds, in process.

Serves Gridwork in process (httpx over ASGI, no network) on a database the load benchmark
kept (`python -m bench.load.run --keep` prints its name) and sends requests one at a time,
so the figures are the app's own cost per request, without contention (CPU: this process's,
the database's not included, and as a multiple of `/healthz`'s in the same run, since this
machine's speed drifts):

    .venv/bin/python -m bench.request_costs --database gridwork_bench_xxxxxxxx [--repeat 300]

`--profile 'list: district, first page'` (a request's name as printed) also samples that kind's
warm requests with pyinstrument and prints where their time went (`--flat`: each function's
total, heaviest first).
"""

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from statistics import median
from typing import Any

import httpx
from pyinstrument import Profiler
from sqlalchemy import event
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import Database
from app.main import create_app, keep_start_up_out_of_collections
from bench.district import ADMIN_URL
from bench.load.run import CHAIN, SECRET, pool, token

Request = Callable[[int], tuple[str, str, dict[str, Any] | None, str]]


def _report(n: int) -> tuple[str, str, dict[str, Any] | None, str]:
    g = n % 200
    body = {
        "client_id": str(uuid.uuid4()),
        "category_code": f"K{n % 30}",
        "description": f"cost report {n}",
        "lat": 23.0 + (g // 40) * 0.01 + 0.0005 + (n % 90) * 0.0001,
        "lon": 113.0 + (g % 40) * 0.01 + 0.0005 + (n % 89) * 0.0001,
    }
    return "POST", "/api/v1/events", body, f"w{g}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--profile", metavar="NAME", help="profile this kind of request")
    parser.add_argument("--flat", action="store_true", help="the profile as functions' totals")
    args = parser.parse_args()
    url = make_url(ADMIN_URL).set(database=args.database).render_as_string()
    settings = Settings(database_url=url, secret_key=SECRET, env="production")
    app = create_app(settings)
    keep_start_up_out_of_collections()  # as `gridwork serve` does
    database: Database = app.state.database
    statements = 0

    def count(*_: Any) -> None:
        nonlocal statements
        statements += 1

    for engine in database.engines:
        event.listen(engine.sync_engine, "before_cursor_execute", count)
    kinds: dict[str, Request] = {"healthz": lambda n: ("GET", "/healthz", None, "district")}
    kinds["event report"] = _report
    for action, status, who, body in CHAIN:
        ids = await pool(url, status, args.repeat + 5)
        user = "district" if who == "district" else "handler"
        kinds[f"action: {action}"] = lambda n, ids=ids, action=action, body=body, user=user: (
            "POST",
            f"/api/v1/tickets/{ids[n]}/actions/{action}",
            body,
            user,
        )
    kinds["list: district, first page"] = lambda n: ("GET", "/api/v1/tickets", None, "district")
    kinds["list: district, one ticket"] = lambda n: (  # what a list costs besides its tickets
        "GET",
        "/api/v1/tickets?limit=1",
        None,
        "district",
    )
    kinds["detail"] = lambda n: ("GET", f"/api/v1/tickets/{1000 + n * 997}", None, "district")
    kinds["users/me"] = lambda n: ("GET", "/api/v1/users/me", None, "district")
    year = "org_unit=NH&from=2025-11-01&to=2026-11-01&group_by=month"
    kinds["stats: district year by month"] = lambda n: (
        "GET",
        f"/api/v1/stats/closure?{year}",
        None,
        "district",
    )
    tokens: dict[str, str] = {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        print(
            "| request | statements | median ms | mean ms | CPU ms | CPU × healthz |\n"
            "|---|---:|---:|---:|---:|---:|"
        )
        healthz_cpu = 0.0
        for name, make in kinds.items():
            times, counts = [], []
            cpu = 0.0
            profiler = Profiler(interval=0.0002, async_mode="disabled")
            for n in range(args.repeat):
                if name == args.profile and n == args.repeat // 5:
                    profiler.start()
                method, path, body, user = make(n)
                if user not in tokens:
                    tokens[user] = token(user)
                headers = {"Authorization": f"Bearer {tokens[user]}"}
                before, started, cpu_started = statements, time.perf_counter(), time.process_time()
                response = await client.request(method, path, json=body, headers=headers)
                times.append((time.perf_counter() - started) * 1000)
                if n >= args.repeat // 5:
                    cpu += time.process_time() - cpu_started
                counts.append(statements - before)
                if response.status_code >= 400:
                    raise RuntimeError(f"{name}: {response.status_code} {response.text}")
            if profiler.is_running:
                profiler.stop()
                text = profiler.output_text(unicode=True, flat=args.flat, flat_time="total")
                print(text, flush=True)
            warm = times[len(times) // 5 :]
            cpu_ms = cpu * 1000 / len(warm)
            healthz_cpu = healthz_cpu or cpu_ms
            print(
                f"| {name} | {median(counts):g} | {median(warm):.2f} |"
                f" {sum(warm) / len(warm):.2f} | {cpu_ms:.2f} | {cpu_ms / healthz_cpu:.1f} |",
                flush=True,
            )
    await database.dispose()


if __name__ == "__main__":
    asyncio.run(main())
