"""The load benchmark (`make bench`): Gridwork on PostgreSQL under wrk, beside a reference app.

It fills a scratch database with a district (800 grids) and 1,000,000 tickets plus a pool of
fresh reports for the action chain (a kept one: removes what earlier runs added first), and
vacuums it, then, for 1 and 2 uvicorn workers:
- serves the reference (bare FastAPI + raw asyncpg inserting one row, `bench/load/reference.py`)
  and measures its insert and a minimal GET;
- serves Gridwork with the scheduler running beside it, and measures patrol reports,
  clock-ins, dispatch → claim → feedback → verify (each action alone), ticket-list, detail and
  statistics reads, and a mix of 70% reads and 30% reports.
Every figure is printed as requests/s, p50 and p99 latency, errors and the ratio to the
reference insert rate; the whole run goes to `bench/results/<time>.json` and `.md`.

    .venv/bin/python -m bench.load.run [--tickets 1000000] [--duration 10] [--connections 50]
        [--workers 1,2] [--database NAME] [--keep]
"""

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from app.auth.security import issue_access_token
from bench.district import ADMIN_URL, connect, fill_district, scratch_database

HERE = Path(__file__).parent
LUA = HERE / "lua"
RESULTS = HERE.parent / "results"
VENV_BIN = Path(sys.executable).parent
SECRET = "bench-secret-" + "x" * 32
GRIDWORK_PORT, REFERENCE_PORT = 8710, 8711
POOL_DEPARTMENT, POOL_TOWN = "D7", "T9"

# Fresh tickets for the action chain in town T9, $1 of them in status $2, those past dispatch
# with department D7 (no alarm: the scheduler leaves them alone). Each action gets a pool of its
# own, so that none is limited by how many the action before it got through.
POOL_SQL = """
INSERT INTO tickets (client_id, source, status, level, owner_unit_code, grid_code,
    community_code, town_code, district_code, category_code, department_code, reporter,
    description, lat, lon, urgent, self_resolved, reported_at, dispatched_at, feedback_at,
    time_limit_value, time_limit_unit, deadline_started_at, warning_at, deadline_at, overdue,
    escalation_count, rework_count, extension_count, version, updated_at)
SELECT gen_random_uuid(), 'patrol', $2::text, 'community', 'C' || (g / 8), 'G' || g,
    'C' || (g / 8), 'T9', 'NH', 'K' || (i % 30),
    CASE WHEN $2::text = 'reported' THEN NULL ELSE 'D7' END, 'w' || g, 'chain ticket ' || i,
    23.005 + (g / 40) * 0.01, 113.005 + (g % 40) * 0.01, false, false, now(),
    CASE WHEN $2::text = 'reported' THEN NULL ELSE now() END,
    CASE WHEN $2::text = 'feedback' THEN now() END,
    60, 'minutes', now(), now() + interval '48 minutes', now() + interval '60 minutes', false,
    0, 0, 0, 1, now()
FROM (SELECT i, 720 + (i % 80) AS g FROM generate_series(1, $1) i) s
"""
# The tickets earlier runs added to a kept database (action pools, reports) and what refers to
# them, removed first: every run starts from the district as filled, so that runs compare.
EARLIER_RUNS_SQL = [
    # No foreign-key checks: `tickets.duplicate_of` has no index, so each deleted ticket's check
    # would read the whole table. The statements below leave no reference dangling.
    "SET LOCAL session_replication_role = replica",
    "CREATE TEMP TABLE bench_added ON COMMIT DROP AS SELECT id FROM tickets"
    " WHERE description LIKE 'chain ticket %' OR description LIKE 'bench report %'",
    *(
        f"DELETE FROM {table} WHERE ticket_id IN (SELECT id FROM bench_added)"
        for table in ("ticket_history", "outbox", "attachments", "open311_requests")
    ),
    "UPDATE tickets SET duplicate_of = NULL WHERE duplicate_of IN (SELECT id FROM bench_added)",
    "DELETE FROM tickets WHERE id IN (SELECT id FROM bench_added)",
]
CHAIN = [  # action, from status, who, body
    ("dispatch", "reported", "district", {"department_code": POOL_DEPARTMENT}),
    ("claim", "dispatched", "handler", {}),
    ("feedback", "in_progress", "handler", {"note": "处置完毕"}),
    ("verify", "feedback", "district", {"passed": True}),
]
READS = {
    "list: district, first page": ["/api/v1/tickets"],
    "list: community, filtered": ["/api/v1/tickets?org_unit=C42&status=closed"],
    "detail": [f"/api/v1/tickets/{i}" for i in range(1000, 200_000, 997)],
    "stats: district year by month": [
        "/api/v1/stats/closure?org_unit=NH&from=2025-11-01&to=2026-11-01&group_by=month"
    ],
}


@dataclass
class Figure:
    scenario: str
    workers: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    ratio: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


def wrk(script: str, port: int, args: argparse.Namespace, **env: str) -> dict[str, Any]:
    """One wrk run; the figures its done() printed."""
    command = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA / script),
        f"http://127.0.0.1:{port}",
    ]
    environment = os.environ | {
        "BENCH_LUA": str(LUA),
        "BENCH_RUN": str(random.randrange(1, 2**31)),
        "BENCH_THREADS": str(args.threads),
        **env,
    }
    output = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    line = next(x for x in output.stdout.splitlines() if x.startswith("BENCH_JSON "))
    return dict(json.loads(line.removeprefix("BENCH_JSON ")))


def figure(name: str, workers: int, raw: dict[str, Any]) -> Figure:
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw["errors"].values())
    print(
        f"  {name} ({workers} worker(s)): {raw['requests'] / seconds:,.0f}/s, "
        f"p50 {raw['p50_ms']:.1f} ms, p99 {raw['p99_ms']:.1f} ms, {errors} errors",
        flush=True,
    )
    return Figure(
        name,
        workers,
        raw["requests"] / seconds,
        raw["p50_ms"],
        raw["p99_ms"],
        raw["requests"],
        errors,
        details=raw,
    )


class Server:
    """A uvicorn command in the background, ready once `ready_path` answers."""

    def __init__(self, command: list[str], port: int, ready_path: str, env: dict[str, str]):
        self.log = (RESULTS / f".server-{port}.log").open("ab")  # its log lines, run after run
        self.process = subprocess.Popen(
            command, env=os.environ | env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise RuntimeError(f"{command} exited; see {self.log.name}")
            time.sleep(0.2)
        raise RuntimeError(f"{command} did not become ready")

    def stop(self) -> None:
        self.process.terminate()  # graceful: requests still queued are answered first
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def token(username: str) -> str:
    return issue_access_token(SECRET, username, 0, datetime.now(UTC), timedelta(hours=3))


def grid_workers(count: int) -> str:
    """A file of `token lat lon` lines for `count` grid workers, each at their grid's corner."""
    path = RESULTS / ".workers.txt"
    rows = [
        f"{token(f'w{g}')} {23.0 + (g // 40) * 0.01:.4f} {113.0 + (g % 40) * 0.01:.4f}"
        for g in range(count)
    ]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


async def pool(url: str, status: str, limit: int) -> list[int]:
    """The ids of the first `limit` tickets of the chain's pool in `status`."""
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "SELECT id FROM tickets WHERE town_code = $1 AND status = $2"
            " AND description LIKE 'chain ticket %' ORDER BY id LIMIT $3",
            POOL_TOWN,
            status,
            limit,
        )
    finally:
        await conn.close()
    return [row["id"] for row in rows]


async def pool_ids(url: str, status: str, limit: int) -> str:
    """A file of those ids, a line each, for wrk."""
    path = RESULTS / f".ids-{status}.txt"
    path.write_text("".join(f"{ticket_id}\n" for ticket_id in await pool(url, status, limit)))
    return str(path)


def reference_figures(workers: int, url: str, args: argparse.Namespace) -> list[Figure]:
    database = make_url(url).database or ""
    server = Server(
        [
            str(VENV_BIN / "uvicorn"),
            "bench.load.reference:app",
            "--port",
            str(REFERENCE_PORT),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        REFERENCE_PORT,
        "/ping",
        {"BENCH_DATABASE": database},
    )
    try:
        insert = figure(
            "reference: insert one row", workers, wrk("reference.lua", REFERENCE_PORT, args)
        )
        ping = figure(
            "reference: minimal GET",
            workers,
            wrk("read.lua", REFERENCE_PORT, args, BENCH_PATHS="/ping"),
        )
        return [insert, ping]
    finally:
        server.stop()


async def gridwork_figures(
    workers: int, url: str, args: argparse.Namespace, workers_file: str
) -> list[Figure]:
    env = {
        "GRIDWORK_DATABASE_URL": url,
        "GRIDWORK_SECRET_KEY": SECRET,
        "GRIDWORK_ENV": "production",
        "GRIDWORK_ACCESS_TOKEN_MINUTES": "180",
    }
    server = Server(
        [
            str(VENV_BIN / "gridwork"),
            "serve",
            "--port",
            str(GRIDWORK_PORT),
            "--workers",
            str(workers),
        ],
        GRIDWORK_PORT,
        "/readyz",
        env,
    )
    scheduler = await asyncio.to_thread(
        subprocess.Popen,
        [str(VENV_BIN / "gridwork"), "worker"],
        env=os.environ | env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    district, handler = token("district"), token("handler")
    figures = []
    try:
        run = lambda script, **env: wrk(script, GRIDWORK_PORT, args, **env)  # noqa: E731
        for paths in READS.values():  # warm the caches and plans of every worker
            run("read.lua", BENCH_TOKEN=district, BENCH_PATHS="|".join(paths))
        figures.append(
            figure("event reports", workers, run("report.lua", BENCH_WORKERS=workers_file))
        )
        figures.append(
            figure("clock-ins", workers, run("clock_in.lua", BENCH_WORKERS=workers_file))
        )
        for action, status, who, body in CHAIN:
            ids = await pool_ids(url, status, 6000 * args.duration)
            raw = run(
                "action.lua",
                BENCH_DATA=ids,
                BENCH_ACTION=action,
                BENCH_BODY=json.dumps(body, ensure_ascii=False),
                BENCH_TOKEN=district if who == "district" else handler,
            )
            figures.append(figure(f"action: {action}", workers, raw))
        for name, paths in READS.items():
            raw = run("read.lua", BENCH_TOKEN=district, BENCH_PATHS="|".join(paths))
            figures.append(figure(name, workers, raw))
        mixed = run(
            "mixed.lua",
            BENCH_WORKERS=workers_file,
            BENCH_TOKEN=district,
            BENCH_PATHS="|".join(p for paths in READS.values() for p in paths[:3]),
        )
        figures.append(figure("mixed: 70% reads, 30% reports", workers, mixed))
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)
        server.stop()
    return figures


def table(figures: list[Figure]) -> str:
    lines = [
        "| scenario | workers | requests/s | p50 ms | p99 ms | errors | × reference insert |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else ""
        lines.append(
            f"| {f.scenario} | {f.workers} | {f.requests_per_s:,.0f} | {f.p50_ms:.1f} | "
            f"{f.p99_ms:.1f} | {f.errors} | {ratio} |"
        )
    return "\n".join(lines)


def commit() -> str | None:
    """The commit of the code measured, `+changes` when tracked files have uncommitted ones."""
    git = ["git", "-C", str(HERE)]
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True)
        changed = subprocess.run([*git, "status", "--porcelain", "-uno"], capture_output=True)
    except OSError:  # no git here
        return None
    if head.returncode:
        return None
    return head.stdout.decode().strip() + ("+changes" if changed.stdout.strip() else "")


def load_options(description: str) -> argparse.ArgumentParser:
    """The options of a run under wrk: tickets generated, and wrk's duration, connections and
    threads."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    return parser


async def main() -> None:
    parser = load_options(__doc__)
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts to measure")
    parser.add_argument("--database", help="reuse a database a --keep run left")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)

    database: AbstractAsyncContextManager[str]
    if args.database:
        database = nullcontext(make_url(ADMIN_URL).set(database=args.database).render_as_string())
    else:
        database = scratch_database(ADMIN_URL, keep=args.keep)
    async with database as url:
        worker_counts = [int(w) for w in args.workers.split(",")]
        if not args.database:
            await fill_district(url, args.tickets)
        conn = await connect(url)
        if args.database:
            async with conn.transaction():
                for statement in EARLIER_RUNS_SQL:
                    await conn.execute(statement)
        for _, status, _, _ in CHAIN:
            await conn.execute(POOL_SQL, 6000 * args.duration * len(worker_counts), status)
        await conn.execute("ANALYZE tickets")
        rebuilt = await asyncio.to_thread(  # the tickets above were written past the service
            subprocess.run,
            [str(VENV_BIN / "gridwork"), "stats", "rebuild"],
            env=os.environ | {"GRIDWORK_DATABASE_URL": url},
            capture_output=True,
            text=True,
        )
        if rebuilt.returncode:
            raise RuntimeError(rebuilt.stderr)
        # The rows earlier runs left, deleted above, and the rollups just rebuilt are vacuumed
        # now: neither read around by the measurements (where autovacuum is off) nor vacuumed
        # during them.
        await conn.execute("VACUUM (ANALYZE)")
        await conn.close()
        workers_file = grid_workers(200)
        figures: list[Figure] = []
        for workers in worker_counts:
            reference = reference_figures(workers, url, args)
            ours = await gridwork_figures(workers, url, args, workers_file)
            for f in [*reference, *ours]:
                f.ratio = f.requests_per_s / reference[0].requests_per_s
            figures += [*reference, *ours]
            print(table([*reference, *ours]), flush=True)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    setup = vars(args) | {"commit": commit()}
    document = {"at": stamp, "setup": setup, "figures": [asdict(f) for f in figures]}
    (RESULTS / f"{stamp}.json").write_text(json.dumps(document, indent=2, ensure_ascii=False))
    markdown = f"# Load benchmark {stamp}\n\n{json.dumps(setup)}\n\n{table(figures)}\n"
    (RESULTS / f"{stamp}.md").write_text(markdown)
    print(f"\nwritten bench/results/{stamp}.json and .md")


if __name__ == "__main__":
    asyncio.run(main())
