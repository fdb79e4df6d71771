"""Closure-statistics latency on PostgreSQL: the whole district over a year by month, and one
town by category, with N tickets (default 1,000,000) spread over the year before 2026-11-22.

    .venv/bin/python -m bench.closure_stats [--tickets 1000000] [--repeat 20]
"""

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime

from app.config import Settings
from app.db import Database
from app.orgs.models import OrgUnit
from app.stats.schemas import GroupBy
from app.stats.service import closure_stats
from bench.district import ADMIN_URL, fill_district, scratch_database

QUERIES = [
    ("district NH, one year, by month", "NH", GroupBy.month),
    ("town T3, one year, by category", "T3", GroupBy.category),
]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    async with scratch_database(ADMIN_URL) as url:
        await fill_district(url, args.tickets)
        database = Database(url)
        settings = Settings(database_url=url)
        since = datetime(2025, 11, 21, 16, tzinfo=UTC)  # 2025-11-22 in Shanghai
        until = datetime(2026, 11, 22, 16, tzinfo=UTC)
        print(f"{'query':40} {'median ms':>10} {'p95 ms':>8} {'groups':>7}")
        for name, code, group_by in QUERIES:
            timings = []
            async with database.sessions() as session:
                unit = await session.get(OrgUnit, code)
                assert unit is not None
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    stats = await closure_stats(
                        session,
                        unit,
                        since,
                        until,
                        group_by,
                        settings.timezone,
                        datetime.now(UTC),
                    )
                    timings.append((time.perf_counter() - started) * 1000)
            timings.sort()
            p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
            print(f"{name:40} {statistics.median(timings):10.0f} {p95:8.0f} {len(stats.items):7}")
        await database.dispose()


if __name__ == "__main__":
    asyncio.run(main())
