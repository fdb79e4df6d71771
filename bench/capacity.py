"""What one PostgreSQL holds (docs/scaling.md): on a generated district kept by
`bench.closure_stats --keep` (10 million tickets), the rows per year, each table's and each of
the tickets' indexes' size, VACUUM and pg_dump times, the latency of the hot reads as the app
serves them, and what announcing ticket changes (NOTIFY, migration 0017) costs a write.

    .venv/bin/python -m bench.capacity --database gridwork_bench_xxxxxxxx [--repeat 20]
        [--no-dump]
"""

import argparse
import asyncio
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from app.config import Settings
from app.main import create_app
from bench.district import ADMIN_URL, connect
from bench.load.run import SECRET, token

YEAR = "from=2025-11-01&to=2026-11-01"
STAFF = [("gd-dispatcher", "dispatcher", "GD"), ("gd-supervisor", "supervisor", "GD")]
READS = [
    ("list: district, first page", "/api/v1/tickets", "gd-dispatcher"),
    ("list: to-do of the district", "/api/v1/tickets?awaiting=me", "gd-dispatcher"),
    ("list: grid worker's own", "/api/v1/tickets", "WORKER"),
    ("detail", "/api/v1/tickets/4000000", "gd-dispatcher"),
    (
        "closure: district year by month",
        f"/api/v1/stats/closure?org_unit=GD&{YEAR}&group_by=month",
        "gd-supervisor",
    ),
    (
        "closure: district year by town",
        f"/api/v1/stats/closure?org_unit=GD&{YEAR}",
        "gd-supervisor",
    ),
    (
        "appraisal: grid workers, year",
        f"/api/v1/stats/appraisal?org_unit=GD&{YEAR}&subject=grid_workers",
        "gd-supervisor",
    ),
]


async def sizes(conn: asyncpg.Connection) -> None:
    print("\n## Rows per year (local reporting year)\n")
    for year, count in await conn.fetch(
        "SELECT extract(year FROM reported_at AT TIME ZONE 'Asia/Shanghai')::int, count(*)"
        " FROM tickets GROUP BY 1 ORDER BY 1"
    ):
        print(f"- {year}: {count:,} tickets")
    print("\n## Tables (heap + TOAST, indexes)\n")
    for name, rows, heap, indexes in await conn.fetch(
        "SELECT c.relname, c.reltuples::bigint, pg_table_size(c.oid), pg_indexes_size(c.oid)"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind = 'r'"
        " ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 8"
    ):
        print(f"- {name}: ~{rows:,} rows, {heap / 2**20:,.0f} MiB + {indexes / 2**20:,.0f} MiB")
    print("\n## Indexes of tickets\n")
    for name, size in await conn.fetch(
        "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index"
        " WHERE indrelid = 'tickets'::regclass ORDER BY 2 DESC"
    ):
        print(f"- {name}: {size / 2**20:,.0f} MiB")
    total = await conn.fetchval("SELECT pg_database_size(current_database())")
    print(f"\nDatabase: {total / 2**30:.1f} GiB")


async def upkeep(conn: asyncpg.Connection, url: str, dump: bool) -> None:
    print("\n## Upkeep\n")
    for table in ("tickets", "ticket_history"):
        started = time.perf_counter()
        await conn.execute(f"VACUUM (ANALYZE) {table}")
        print(f"- VACUUM (ANALYZE) {table}: {time.perf_counter() - started:.1f} s")
    if not dump:
        return
    parsed = make_url(url)
    with tempfile.TemporaryDirectory(prefix="gridwork-dump-") as workdir:
        target = Path(workdir) / "gridwork.dump"
        started = time.perf_counter()
        await asyncio.to_thread(
            subprocess.run,
            [
                "pg_dump",
                "-Fc",
                "-h",
                parsed.host or "127.0.0.1",
                "-U",
                "postgres",
                "-f",
                str(target),
                parsed.database or "",
            ],
            check=True,
        )
        took = time.perf_counter() - started
        print(f"- pg_dump -Fc: {took:.0f} s, {target.stat().st_size / 2**30:.2f} GiB")


async def reads(url: str, repeat: int) -> None:
    conn = await connect(url)
    for username, role, unit in STAFF:
        await conn.execute(
            "INSERT INTO users (username, password_hash, display_name, role, org_unit_code,"
            " is_active, token_generation, failed_logins, created_at)"
            " VALUES ($1, 'x', $1, $2, $3, true, 0, 0, now()) ON CONFLICT DO NOTHING",
            username,
            role,
            unit,
        )
    worker = await conn.fetchval(
        "SELECT reporter FROM tickets WHERE reporter LIKE 'gw-%' GROUP BY reporter"
        " ORDER BY count(*) DESC LIMIT 1"
    )
    await conn.close()
    app = create_app(Settings(database_url=url, secret_key=SECRET, env="production"))
    transport = httpx.ASGITransport(app=app)
    print(f"\n## Hot reads, in process (median and p90 of {repeat}, after one warm-up)\n")
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        for name, path, user in READS:
            headers = {"Authorization": f"Bearer {token(worker if user == 'WORKER' else user)}"}
            (await client.get(path, headers=headers)).raise_for_status()
            took = []
            for _ in range(repeat):
                started = time.perf_counter()
                (await client.get(path, headers=headers)).raise_for_status()
                took.append((time.perf_counter() - started) * 1000)
            took.sort()
            p90 = took[int(len(took) * 0.9) - 1]
            print(f"- {name}: {statistics.median(took):.1f} ms (p90 {p90:.1f})")
    await app.state.database.dispose()


async def notify_cost(url: str, per_connection: int = 2000, connections: int = 8) -> None:
    """History rows inserted one per transaction by 8 connections, with the trigger that
    announces them and without it, alternately."""
    print("\n## Announcing ticket changes (NOTIFY) on each history insert\n")
    conn = await connect(url)
    ticket = await conn.fetchval("SELECT min(id) FROM tickets")
    first = await conn.fetchval("SELECT coalesce(max(id), 0) FROM ticket_history")
    insert = (
        "INSERT INTO ticket_history (ticket_id, at, actor, action, to_status, to_level)"
        " VALUES ($1, now(), 'bench', 'urge', 'reported', 'community')"
    )

    async def writer() -> None:
        own = await connect(url)
        try:
            for _ in range(per_connection):
                await own.execute(insert, ticket)
        finally:
            await own.close()

    rates: dict[str, list[float]] = {"announced": [], "not announced": []}
    try:
        for _ in range(2):
            for label, state in (("announced", "ENABLE"), ("not announced", "DISABLE")):
                await conn.execute(
                    f"ALTER TABLE ticket_history {state} TRIGGER ticket_changes_notice"
                )
                started = time.perf_counter()
                await asyncio.gather(*(writer() for _ in range(connections)))
                seconds = time.perf_counter() - started
                rates[label].append(per_connection * connections / seconds)
    finally:
        await conn.execute("ALTER TABLE ticket_history ENABLE TRIGGER ticket_changes_notice")
        await conn.execute("DELETE FROM ticket_history WHERE id > $1 AND actor = 'bench'", first)
        await conn.close()
    for label, runs in rates.items():
        print(f"- {label}: {', '.join(f'{r:,.0f}' for r in runs)} commits/s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-dump", dest="dump", action="store_false")
    args = parser.parse_args()
    url = make_url(ADMIN_URL).set(database=args.database).render_as_string()
    conn = await connect(url)
    try:
        await sizes(conn)
        await upkeep(conn, url, args.dump)
    finally:
        await conn.close()
    await reads(url, args.repeat)
    await notify_cost(url)


if __name__ == "__main__":
    asyncio.run(main())
