"""How long one scheduler pass takes on PostgreSQL: N open tickets (default 100,000), of which
D (default 1,000) have missed their deadline and must be escalated.

    .venv/bin/python -m bench.scheduler_pass [--tickets 100000] [--due 1000] [--repeat 5]
        [--unit hours|working_hours] [--webhooks N]

Prints the pass time with one worker and with four workers sharing the pass, and the plan of
the query that finds due tickets.
"""

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime

from app.config import Settings
from app.db import Database
from app.tickets.scheduler import run_pass
from bench.district import ADMIN_URL, connect, fill_district, scratch_database

RESET_SQL = """
UPDATE tickets SET
    status = (ARRAY['reported', 'dispatched', 'in_progress'])[1 + id % 3],
    level = 'community', owner_unit_code = community_code, escalation_count = 0,
    overdue = false, alarm_stage = 'warning',
    deadline_started_at = $1::timestamptz - interval '1 hour',
    warning_at = $1::timestamptz + interval '1 hour' + (id % 600) * interval '1 minute',
    deadline_at = $1::timestamptz + interval '2 hours' + (id % 600) * interval '1 minute',
    alarm_at = $1::timestamptz + interval '1 hour' + (id % 600) * interval '1 minute';
UPDATE tickets SET alarm_stage = 'deadline',
    warning_at = $1::timestamptz - interval '2 minutes',
    deadline_at = $1::timestamptz - interval '1 minute',
    alarm_at = $1::timestamptz - interval '1 minute'
WHERE id % $2 = 0;
"""


async def reset(url: str, now: datetime, every: int) -> None:
    conn = await connect(url)
    try:
        for statement in RESET_SQL.split(";"):
            if statement.strip():
                args = [now, every] if "$2" in statement else [now]
                await conn.execute(statement, *args)
        await conn.execute("VACUUM ANALYZE tickets")
    finally:
        await conn.close()


async def explain(url: str, now: datetime) -> str:
    conn = await connect(url)
    try:
        rows = await conn.fetch(
            "EXPLAIN ANALYZE SELECT * FROM tickets WHERE alarm_at <= $1 ORDER BY alarm_at "
            "LIMIT 200 FOR UPDATE SKIP LOCKED",
            now,
        )
        return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument(
        "--unit",
        default="hours",
        choices=["hours", "working_hours"],
        help="the tickets' limit: working hours make each escalation do calendar arithmetic",
    )
    parser.add_argument(
        "--webhooks", type=int, default=0, help="configured webhook URLs (outbox rows written)"
    )
    args = parser.parse_args()
    every = args.tickets // args.due
    now = datetime.now(UTC)
    async with scratch_database(args.admin_url) as url:
        await fill_district(url, args.tickets)
        database = Database(url, pool_size=8)
        urls = ",".join(f"http://127.0.0.1:9/hook/{n}" for n in range(args.webhooks))
        settings = Settings(database_url=url, webhook_urls=urls)
        conn = await connect(url)
        await conn.execute("UPDATE tickets SET time_limit_unit = $1", args.unit)
        await conn.close()
        for workers in (1, 4):
            timings = []
            for _ in range(args.repeat):
                await reset(url, now, every)
                started = time.perf_counter()
                reports = await asyncio.gather(
                    *(run_pass(database, settings, now) for _ in range(workers))
                )
                timings.append(time.perf_counter() - started)
                escalated = sum(r.escalated for r in reports)
                assert escalated == args.tickets // every, escalated
            print(
                f"{workers} worker(s), {args.unit}, {args.webhooks} webhook(s): "
                f"{args.tickets:,} open, {escalated:,} due: pass "
                f"median {statistics.median(timings) * 1000:.0f} ms "
                f"(min {min(timings) * 1000:.0f}, max {max(timings) * 1000:.0f}); "
                f"{statistics.median(timings) / escalated * 1e6:.0f} µs per escalation"
            )
        await reset(url, now, every)
        print(await explain(url, now))
        await database.dispose()


if __name__ == "__main__":
    asyncio.run(main())
