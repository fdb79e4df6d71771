"""Closure-statistics latency on PostgreSQL over a generated district (`gridwork stats generate`:
800 grids, N tickets over 3 years before 2026-11-23), with and without the rollups, and what
the rollups add to each ticket change.

    .venv/bin/python -m bench.closure_stats [--tickets 1000000] [--repeat 20] [--changes 500]
        [--keep | --database gridwork_bench_xxxxxxxx]
"""

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import event, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import Database
from app.orgs.models import OrgUnit
from app.stats import generate, rollups
from app.stats.schemas import GroupBy
from app.stats.service import closure_stats
from app.tickets.machine import Status
from app.tickets.models import Ticket
from bench.district import ADMIN_URL, scratch_database

NOW = datetime(2026, 11, 23, 2, tzinfo=UTC)  # 10:00 in Shanghai
YEAR = (datetime(2025, 10, 31, 16, tzinfo=UTC), datetime(2026, 10, 31, 16, tzinfo=UTC))
LAST_365_DAYS = (datetime(2025, 11, 22, 16, tzinfo=UTC), datetime(2026, 11, 22, 16, tzinfo=UTC))
THIS_YEAR = (datetime(2025, 12, 31, 16, tzinfo=UTC), datetime(2026, 11, 22, 16, tzinfo=UTC))
QUARTER = (datetime(2026, 6, 30, 16, tzinfo=UTC), datetime(2026, 9, 30, 16, tzinfo=UTC))
QUERIES = [  # name, unit, group_by, [since, until)
    ("district, 2025-11..2026-10, by month", "GD", GroupBy.month, YEAR),
    ("town, 2025-11..2026-10, by category", "GD-T03", GroupBy.category, YEAR),
    ("district, last 365 days, by month", "GD", GroupBy.month, LAST_365_DAYS),
    ("town, last 365 days, by category", "GD-T03", GroupBy.category, LAST_365_DAYS),
    ("district, 2026 to date, by town", "GD", GroupBy.org_unit, THIS_YEAR),
    ("district, 2026 Q3, by week", "GD", GroupBy.week, QUARTER),
    ("community, 2026 to date, by grid", "GD-T03-C04", GroupBy.org_unit, THIS_YEAR),
]


def percentiles(timings: list[float]) -> tuple[float, float]:
    timings = sorted(timings)
    return statistics.median(timings), timings[min(len(timings) - 1, int(len(timings) * 0.95))]


async def time_queries(database: Database, repeat: int) -> None:
    print(f"{'query':40} {'rollups':>7} {'median ms':>10} {'p95 ms':>8} {'groups':>7}")
    print("(a community's grids are always counted from the tickets)")
    for name, code, group_by, (since, until) in QUERIES:
        for use_rollups in (False, True):
            timings = []
            async with database.reads() as session:  # as the API serves statistics
                unit = await session.get(OrgUnit, code)
                assert unit is not None
                for _ in range(repeat):
                    started = time.perf_counter()
                    stats = await closure_stats(
                        session, unit, since, until, group_by, "Asia/Shanghai", NOW, use_rollups
                    )
                    timings.append((time.perf_counter() - started) * 1000)
            median, p95 = percentiles(timings)
            flag = "yes" if use_rollups else "no"
            print(f"{name:40} {flag:>7} {median:10.1f} {p95:8.1f} {len(stats.items):7}")


@contextmanager
def rollup_upkeep(enabled: bool) -> Iterator[None]:
    if not enabled:
        event.remove(Session, "after_flush", rollups._count_changes)
    try:
        yield
    finally:
        if not enabled:
            event.listen(Session, "after_flush", rollups._count_changes)


async def time_changes(database: Database, changes: int) -> None:
    """Rates closed tickets one transaction each (load, change, commit), the way a rating,
    a verification or an escalation changes a ticket, with and without the rollup upkeep."""
    async with database.sessions() as session:
        ids = list(
            await session.scalars(
                select(Ticket.id).where(Ticket.status == Status.closed).limit(changes * 2)
            )
        )
    random.Random(1).shuffle(ids)

    async def change(ticket_id: int) -> None:
        async with database.sessions() as session:
            ticket = await session.get(Ticket, ticket_id)
            assert ticket is not None
            ticket.status, ticket.rating = Status.rated, 5
            await session.commit()

    timings: dict[bool, list[float]] = {False: [], True: []}
    for number, ticket_id in enumerate(ids):
        enabled = number % 2 == 1  # alternate, so that drift (autovacuum, caches) hits both
        with rollup_upkeep(enabled):
            started = time.perf_counter()
            await change(ticket_id)
            timings[enabled].append((time.perf_counter() - started) * 1000)
    results = {enabled: percentiles(values) for enabled, values in timings.items()}
    (off_median, off_p95), (on_median, on_p95) = results[False], results[True]
    print(f"ticket change without rollups: median {off_median:.2f} ms, p95 {off_p95:.2f} ms")
    print(f"ticket change with rollups:    median {on_median:.2f} ms, p95 {on_p95:.2f} ms")
    print(f"rollup upkeep per change:      {on_median - off_median:+.2f} ms at the median")


def progress(message: str) -> None:
    if "building" in message or "rollup" in message or message.startswith("1,000,000 "):
        print(message, flush=True)


async def on_generated_district(
    args: argparse.Namespace, measure: Callable[[Database, argparse.Namespace], Awaitable[None]]
) -> None:
    """Runs `measure` on the database kept by an earlier run (`--database`), or on a scratch
    one (kept with `--keep`) filled with district GD and `--tickets` tickets over 3 years."""
    if args.database:
        url = make_url(ADMIN_URL).set(database=args.database).render_as_string()
        await measure(Database.for_settings(Settings(database_url=url)), args)
        return
    async with scratch_database(ADMIN_URL, keep=args.keep) as url:
        database = Database.for_settings(Settings(database_url=url))
        started = time.perf_counter()
        async with database.sessions() as session:
            await generate.build_district(session, NOW)
            await session.commit()
            await generate.generate_tickets(
                session, "GD", args.tickets, 3, NOW, 1, "Asia/Shanghai", progress
            )
        print(f"generated {args.tickets:,} tickets in {time.perf_counter() - started:.0f} s")
        await measure(database, args)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--changes", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--database", help="measure a database kept by an earlier --keep run")
    await on_generated_district(parser.parse_args(), measure)


async def measure(database: Database, args: argparse.Namespace) -> None:
    await time_queries(database, args.repeat)
    await time_changes(database, args.changes)
    await database.dispose()


if __name__ == "__main__":
    asyncio.run(main())
