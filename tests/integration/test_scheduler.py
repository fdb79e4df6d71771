"""The scheduler with an injected clock: warnings, escalation, working time, crash safety."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.tickets import scheduler
from app.tickets.models import Ticket, TicketHistory
from app.tickets.scheduler import PassReport, run_pass
from app.worker import run_worker
from tests.helpers import Api


@pytest.fixture
def tick(world: Database, settings: Settings, clock: FrozenClock):  # type: ignore[no-untyped-def]
    async def run(advance: timedelta = timedelta()) -> PassReport:
        clock.advance(advance)
        return await run_pass(world, settings, clock.now())

    return run


async def ticket(api: Api, tid: int) -> dict:  # type: ignore[type-arg]
    return dict((await api.get(f"/api/v1/tickets/{tid}", "admin")).json())


async def test_yellow_at_80_percent_then_escalation_up_to_the_district(api: Api, tick) -> None:  # type: ignore[no-untyped-def]
    tid = (await api.ticket_in("dispatched"))["id"]  # garbage: 4 hours, due 06:00Z

    assert (await tick(timedelta(hours=3, minutes=11))).handled == 0
    assert (await tick(timedelta(minutes=1))).warned == 1
    assert (await ticket(api, tid))["warning"] == "yellow"
    assert (await tick()).handled == 0  # warned once

    report = await tick(timedelta(minutes=48))  # 4 hours: due
    assert (report.escalated, report.warned) == (1, 0)
    town = await ticket(api, tid)
    assert (town["level"], town["owner_unit_code"], town["status"]) == ("town", "GC", "dispatched")
    assert (town["overdue"], town["warning"], town["escalation_count"]) == (True, "green", 1)
    assert town["deadline_at"] == "2026-11-23T10:00:00Z"  # a fresh 4 hours at the new level

    assert (await tick(timedelta(hours=4))).escalated == 1  # warned and escalated in one pass
    district = await ticket(api, tid)
    assert (district["level"], district["owner_unit_code"]) == ("district", "NH")

    assert (await tick(timedelta(hours=4))).overdue == 1
    for _ in range(3):
        assert (await tick(timedelta(hours=4))).handled == 0
    stays = await ticket(api, tid)
    assert (stays["level"], stays["warning"], stays["overdue"]) == ("district", "red", True)

    history = await api.history(tid)
    automatic = [
        (h["action"], h["from_level"], h["to_level"]) for h in history if h["actor"] == "system"
    ]
    assert automatic == [
        ("warn", "community", "community"),
        ("escalate", "community", "town"),
        ("warn", "town", "town"),
        ("escalate", "town", "district"),
        ("warn", "district", "district"),
        ("overdue", "district", "district"),
    ]
    assert stays["version"] == len(history)


async def test_an_undispatched_report_escalates_after_the_dispatch_limit(api: Api, tick) -> None:  # type: ignore[no-untyped-def]
    tid = (await api.report())["id"]
    assert (await tick(timedelta(minutes=59))).escalated == 0
    assert (await tick(timedelta(minutes=1))).escalated == 1
    escalated = await ticket(api, tid)
    assert (escalated["status"], escalated["level"]) == ("reported", "town")
    assert escalated["deadline_at"] == "2026-11-23T04:00:00Z"  # a fresh 60 minutes
    assert escalated["time_limit"] == {"value": 60, "unit": "minutes"}


async def test_suspended_and_finished_tickets_do_not_escalate(api: Api, tick) -> None:  # type: ignore[no-untyped-def]
    suspended = (await api.ticket_in("suspended"))["id"]
    fed_back = (await api.ticket_in("feedback"))["id"]

    assert (await tick(timedelta(hours=10))).handled == 0

    resumed = await api.must(suspended, "resume", "handler")
    assert resumed["deadline_at"] == "2026-11-23T16:00:00Z"  # moved by the 10 hours paused
    assert (await ticket(api, fed_back))["level"] == "community"


async def test_working_hours_deadline_with_suspension_and_extension(api: Api, tick, clock) -> None:  # type: ignore[no-untyped-def]
    clock.set(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))  # Friday 17:00 in Shanghai
    tid = (await api.report(category_code="manhole"))["id"]  # 4 working hours
    dispatched = await api.must(tid, "dispatch", "dispatcher", {"department_code": "NH-SZ"})
    assert dispatched["deadline_at"] == "2026-11-30T04:00:00Z"  # Monday 12:00: 1 h + 3 h

    assert (await tick(timedelta(days=1))).handled == 0  # Saturday: nothing runs
    clock.set(datetime(2026, 11, 30, 1, 0, tzinfo=UTC))  # Monday 09:00
    await api.must(tid, "claim", "sz_handler")
    await api.must(tid, "suspend", "sz_handler", {"note": "等待配件"})
    clock.set(datetime(2026, 11, 30, 5, 0, tzinfo=UTC))  # Monday 13:00: 3 working hours paused
    resumed = await api.must(tid, "resume", "sz_handler")
    assert resumed["deadline_at"] == "2026-11-30T08:30:00Z"  # Monday 16:30

    await api.must(
        tid,
        "request_extension",
        "sz_handler",
        {"time_limit": {"value": 2, "unit": "working_hours"}},
    )
    extended = await api.must(tid, "approve_extension", "dispatcher")
    assert extended["deadline_at"] == "2026-12-01T01:30:00Z"  # 1.5 h Monday, Tuesday 09:30

    clock.set(datetime(2026, 12, 1, 1, 30, tzinfo=UTC))
    assert (await tick()).escalated == 1


async def test_a_worker_killed_mid_batch_loses_and_repeats_nothing(
    api: Api,
    tick,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """PostgreSQL rolls the whole batch back; SQLite has committed the tickets before the one
    interrupted. Either way no ticket is half done, and after a restart each is escalated
    exactly once."""
    ids = [(await api.report())["id"] for _ in range(6)]
    real = scheduler.handle_alarm
    handled = 0

    async def dies_on_the_fourth(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal handled
        handled += 1
        if handled == 4:  # the worker's task is cancelled (SIGTERM) or the process dies
            raise asyncio.CancelledError
        await real(*args, **kwargs)

    monkeypatch.setattr(scheduler, "handle_alarm", dies_on_the_fourth)
    with pytest.raises(asyncio.CancelledError):
        await tick(timedelta(hours=1))
    interrupted = await ticket(api, ids[3])
    assert (interrupted["level"], interrupted["escalation_count"]) == ("community", 0)
    for tid in ids:
        assert (await ticket(api, tid))["version"] == len(await api.history(tid))

    monkeypatch.setattr(scheduler, "handle_alarm", real)
    await tick()
    assert (await tick()).handled == 0
    for tid in ids:
        escalations = [h for h in await api.history(tid) if h["action"] == "escalate"]
        assert len(escalations) == 1
        assert (await ticket(api, tid))["level"] == "town"


async def test_four_workers_escalate_each_ticket_once(
    api: Api, world: Database, settings: Settings, clock: FrozenClock, postgres_only: None
) -> None:
    await api.headers("worker")
    for chunk in range(10):
        await asyncio.gather(*(api.report() for _ in range(50)))
        assert chunk >= 0
    clock.advance(timedelta(minutes=61))
    small_batches = settings.model_copy(update={"scheduler_batch_size": 20})

    reports = await asyncio.gather(*(run_pass(world, small_batches, clock.now()) for _ in range(4)))

    assert sum(r.escalated for r in reports) == 500
    assert sum(1 for r in reports if r.escalated) > 1  # the work really was shared
    async with world.sessions() as session:
        escalations = await session.scalar(
            select(func.count()).where(TicketHistory.action == "escalate")
        )
        counts = set((await session.scalars(select(Ticket.escalation_count))).all())
    assert escalations == 500 and counts == {1}


async def test_the_worker_loop_stops_when_asked(
    world: Database, settings: Settings, clock: FrozenClock
) -> None:
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(run_worker(world, settings, clock, stop), timeout=5)


async def test_a_ticket_that_fails_does_not_hold_up_the_others(
    api: Api,
    tick,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    bad, *good = [(await api.report())["id"] for _ in range(3)]
    real = scheduler.handle_alarm

    async def fails_for_one(session, ticket, *args, **kwargs):  # type: ignore[no-untyped-def]
        if ticket.id == bad:
            raise ValueError("corrupt ticket")
        await real(session, ticket, *args, **kwargs)

    monkeypatch.setattr(scheduler, "handle_alarm", fails_for_one)
    report = await tick(timedelta(hours=1))

    assert (report.escalated, report.failed) == (2, 1)
    assert [(await ticket(api, tid))["level"] for tid in good] == ["town", "town"]
    assert (await ticket(api, bad))["level"] == "community"
    assert (await tick()).handled == 0  # set aside for a while, not retried in a tight loop
    monkeypatch.setattr(scheduler, "handle_alarm", real)
    assert (await tick(timedelta(minutes=10))).escalated == 1


async def test_a_manual_escalation_of_a_paused_ticket_settles_its_missed_deadline(
    api: Api,
    tick,  # type: ignore[no-untyped-def]
) -> None:
    tid = (await api.ticket_in("in_progress"))["id"]  # due at 06:00Z
    await tick(timedelta(hours=4, minutes=1) - timedelta(minutes=2))  # warned at 05:59
    await api.must(tid, "suspend", "handler", {"note": "等待"})  # 05:59: paused just in time
    await tick(timedelta(minutes=10))
    await api.must(tid, "escalate", "dispatcher", {"note": "需街道协调"})
    resumed = await api.must(tid, "resume", "handler")

    assert resumed["deadline_at"] > "2026-11-23T09:59"  # a fresh four hours from now
    assert (await tick()).escalated == 0
    escalations = [h["actor"] for h in await api.history(tid) if h["action"] == "escalate"]
    assert escalations == ["dispatcher"]


async def test_a_stray_alarm_is_cleared_not_looped_on(
    api: Api,
    world: Database,
    tick,  # type: ignore[no-untyped-def]
) -> None:
    tid = (await api.ticket_in("feedback"))["id"]
    async with world.sessions() as session:  # an alarm left behind on a finished deadline
        stray = await session.get(Ticket, tid)
        assert stray is not None
        stray.alarm_at = stray.deadline_at
        await session.commit()

    assert (await tick(timedelta(hours=5))).handled == 0
    async with world.sessions() as session:
        cleared = await session.get(Ticket, tid)
        assert cleared is not None and cleared.alarm_at is None
