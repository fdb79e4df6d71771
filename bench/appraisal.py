"""Appraisal latency on PostgreSQL over a generated district (`gridwork stats generate`: 800
grids and their workers, N tickets over 3 years before 2026-11-23, with their checks,
verifications, returns, assisting parts and clock-ins), from the rollups and from the tickets,
and what keeping the appraisal rollups adds to each kind of ticket change.

    .venv/bin/python -m bench.appraisal [--tickets 1000000] [--repeat 20] [--changes 300]
        [--no-direct] [--keep | --database gridwork_bench_xxxxxxxx]
"""

import argparse
import asyncio
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import Database
from app.orgs.models import OrgUnit
from app.stats import appraisal_rollups
from app.stats.appraisal import appraise
from app.stats.schemas import Subject
from app.tickets.machine import Action, Status
from app.tickets.models import Ticket, TicketHistory
from bench.closure_stats import LAST_365_DAYS, YEAR, on_generated_district, percentiles

ZONE = "Asia/Shanghai"
QUERIES = [  # name, unit, [since, until)
    ("district, 2025-11..2026-10", "GD", YEAR),
    ("district, last 365 days", "GD", LAST_365_DAYS),
    ("town, 2025-11..2026-10", "GD-T03", YEAR),
    ("grid, 2025-11..2026-10 (always tickets)", "GD-T03-C04-G1", YEAR),
]


async def time_queries(database: Database, repeat: int, direct: bool) -> None:
    weights = Settings().appraisal_weight_values
    print(f"{'query':42} {'subject':13} {'rollups':>7} {'median ms':>10} {'p95 ms':>8} {'rows':>5}")
    for name, code, (since, until) in QUERIES:
        for subject in Subject:
            for use_rollups in (True, False) if direct else (True,):
                timings = []
                async with database.reads() as session:  # as the API serves appraisals
                    unit = await session.get_one(OrgUnit, code)
                    for _ in range(repeat if use_rollups else max(3, repeat // 4)):
                        started = time.perf_counter()
                        result = await appraise(
                            session, unit, since, until, subject, ZONE, weights, use_rollups
                        )
                        timings.append((time.perf_counter() - started) * 1000)
                median, p95 = percentiles(timings)
                flag = "yes" if use_rollups else "no"
                print(
                    f"{name:42} {subject:13} {flag:>7} {median:10.1f} {p95:8.1f}"
                    f" {len(result.items):5}",
                    flush=True,
                )


@contextmanager
def appraisal_upkeep(enabled: bool) -> Iterator[None]:
    if not enabled:
        event.remove(Session, "after_flush", appraisal_rollups._count_changes)
    try:
        yield
    finally:
        if not enabled:
            event.listen(Session, "after_flush", appraisal_rollups._count_changes)


Change = Callable[[Ticket], None]


def rate(ticket: Ticket) -> None:
    """Moves the closure rollups only."""
    ticket.status, ticket.rating = Status.rated, 5


def verify_again(ticket: Ticket) -> None:
    """A verification's history row: counted for the worker who verified."""
    assert ticket.closed_at is not None
    at = ticket.closed_at + timedelta(minutes=1)
    session = Session.object_session(ticket)
    assert session is not None
    session.add(
        TicketHistory(
            ticket_id=ticket.id,
            at=at,
            actor=ticket.reporter or "dispatcher",
            action=Action.verify,
            from_status=Status.feedback,
            to_status=Status.closed,
            from_level=ticket.level,
            to_level=ticket.level,
            details={"passed": True, "on_time": True},
        )
    )
    ticket.updated_at = at


def reject(ticket: Ticket) -> None:
    """No longer a valid report of its reporter: moves both rollups."""
    ticket.status = Status.rejected


async def time_changes(database: Database, changes: int) -> None:
    """Each kind of change one transaction at a time (load, change, commit) on closed
    tickets, with and without the appraisal upkeep, alternating."""
    async with database.sessions() as session:
        ids = list(
            await session.scalars(
                select(Ticket.id)
                .where(Ticket.status == Status.closed, Ticket.reporter.is_not(None))
                .limit(changes * 6)
            )
        )
    random.Random(1).shuffle(ids)

    async def change(ticket_id: int, how: Change) -> None:
        async with database.sessions() as session:
            ticket = await session.get_one(Ticket, ticket_id)
            how(ticket)
            await session.commit()

    kinds: list[tuple[str, Change]] = [
        ("rating (closure rollups only)", rate),
        ("verification history row", verify_again),
        ("rejection (both rollups)", reject),
    ]
    for number, (name, how) in enumerate(kinds):
        timings: dict[bool, list[float]] = {False: [], True: []}
        for index, ticket_id in enumerate(ids[number * changes * 2 : (number + 1) * changes * 2]):
            enabled = index % 2 == 1
            with appraisal_upkeep(enabled):
                started = time.perf_counter()
                await change(ticket_id, how)
                timings[enabled].append((time.perf_counter() - started) * 1000)
        (off, off_p95), (on, on_p95) = percentiles(timings[False]), percentiles(timings[True])
        print(
            f"{name:32} without {off:.2f} ms (p95 {off_p95:.2f}), with {on:.2f} ms"
            f" (p95 {on_p95:.2f}): {on - off:+.2f} ms at the median",
            flush=True,
        )


async def measure(database: Database, args: argparse.Namespace) -> None:
    await time_queries(database, args.repeat, not args.no_direct)
    await time_changes(database, args.changes)
    await database.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--no-direct", action="store_true", help="skip counting from tickets")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--database", help="measure a database kept by an earlier --keep run")
    await on_generated_district(parser.parse_args(), measure)


if __name__ == "__main__":
    asyncio.run(main())
