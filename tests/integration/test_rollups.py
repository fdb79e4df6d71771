"""The closure rollups: equal to counting the tickets on a generated district, kept exact by
every kind of ticket change, and rebuilt after a time-zone change."""

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.orgs.models import Level, OrgUnit
from app.stats import appraisal_rollups, generate, measures, rollups, service
from app.stats.appraisal import appraise
from app.stats.models import (
    APPRAISAL_MEASURES,
    ROLLUP_MEASURES,
    AppraisalRollup,
    ClosureRollup,
    CommunityClosureRollup,
    PatrolDays,
)
from app.stats.schemas import GroupBy, Subject
from app.tickets import scheduler
from app.tickets.machine import CLOSED_STATUSES, NOT_ACCEPTED, OPEN_STATUSES
from app.tickets.models import Ticket
from app.tickets.service import CHANGE_MARKER
from tests.helpers import DISPATCH, IN_GC01_1, IN_GC02_1, Api, event_body

ZONE = "Asia/Shanghai"


def local(day: str) -> datetime:
    """Midnight of `day` in Shanghai, in UTC."""
    return datetime.fromisoformat(f"{day}T00:00:00+08:00").astimezone(UTC)


RANGES = [
    (local("2025-01-01"), local("2026-01-01")),  # whole months
    (local("2024-02-10"), local("2026-11-20")),  # months and days
    (local("2026-11-03"), local("2026-11-20")),  # days
    (local("2025-03-03") + timedelta(hours=7), local("2025-06-01") - timedelta(minutes=1)),
]


async def rollup_rows(database: Database) -> list[tuple[Any, ...]]:
    """The rollup rows and their communities' sums as tuples, rows emptied by changes left out
    (they count nothing)."""
    async with database.sessions() as session:
        rows = (await session.scalars(select(ClosureRollup))).all()
        sums = (await session.scalars(select(CommunityClosureRollup))).all()
    result = []
    for row in [*rows, *sums]:
        values = tuple(getattr(row, name) for name in ROLLUP_MEASURES)
        if row.reported == 0:
            assert not any(values), f"a row counting no ticket counts something: {values}"
            continue
        key = (row.community_code, row.grain, row.period)
        if isinstance(row, ClosureRollup):
            key += (row.category_code, row.department_code)
        result.append((*key, row.town_code, row.district_code, *values))
    return sorted(result)


async def appraisal_rows(database: Database) -> list[tuple[Any, ...]]:
    """The appraisal rollups and patrol days as tuples, rows emptied by changes left out."""
    async with database.sessions() as session:
        rows = (await session.scalars(select(AppraisalRollup))).all()
        days = (await session.execute(select(PatrolDays.__table__))).all()
    result: list[tuple[Any, ...]] = [tuple(day) for day in days]
    for row in rows:
        values = tuple(getattr(row, name) for name in APPRAISAL_MEASURES)
        if any(values):
            key = (row.community_code, row.grain, row.period, row.party, row.code)
            result.append((*key, row.town_code, row.district_code, *values))
    return sorted(result)


async def assert_rollups_exact(database: Database) -> None:
    """The rollups as kept by the changes equal the rollups rebuilt from the tickets."""
    kept = await rollup_rows(database), await appraisal_rows(database)
    async with database.sessions() as session:
        await rollups.rebuild(session, ZONE)
        await session.commit()
    assert kept[0] == await rollup_rows(database)
    assert kept[1] == await appraisal_rows(database)


@pytest.fixture
async def generated(world: Database, clock: FrozenClock) -> Database:
    """2,000 tickets over three years across the demo district, by the generator."""
    async with world.sessions() as session:
        await generate.generate_tickets(session, "NH", 2000, 3, clock.now(), 7, ZONE)
    return world


async def test_the_rollup_path_equals_counting_tickets(
    generated: Database, clock: FrozenClock
) -> None:
    async with generated.sessions() as session:
        assert await rollups.built_for(session, ZONE)
        in_rollups = await session.scalar(select(ClosureRollup.reported).limit(1))
        assert in_rollups
        compared = 0
        for code in ("NH", "GC", "DL01", "GC01-1"):
            unit = await session.get(OrgUnit, code)
            assert unit is not None
            for group_by in GroupBy:
                for since, until in RANGES:
                    args = (session, unit, since, until, group_by, ZONE, clock.now())
                    from_tickets = await service.closure_stats(*args, use_rollups=False)
                    with_rollups = await service.closure_stats(*args, use_rollups=True)
                    assert with_rollups == from_tickets, (code, group_by, since, until)
                    compared += bool(from_tickets.items)
    assert compared > 50  # the comparisons were not of empty results


async def test_the_appraisal_from_rollups_equals_counting_tickets(
    generated: Database, clock: FrozenClock
) -> None:
    """Both subjects, every unit level and kind of range: the rollups (where they serve) give
    what the facts counted from the tickets give, figure by figure."""
    weights = Settings().appraisal_weight_values
    compared = 0
    async with generated.sessions() as session:
        for code in ("NH", "GC", "GC01", "GC01-1"):
            unit = await session.get_one(OrgUnit, code)
            for subject in Subject:
                for since, until in RANGES:
                    args = (session, unit, since, until, subject, ZONE, weights)
                    from_tickets = await appraise(*args, use_rollups=False)
                    with_rollups = await appraise(*args, use_rollups=True)
                    assert with_rollups == from_tickets, (code, subject, since, until)
                    compared += sum(row.score is not None for row in from_tickets.items)
    assert compared > 40  # the comparisons were not of empty results


async def test_the_generated_district_feeds_every_appraisal_figure(generated: Database) -> None:
    async with generated.sessions() as session:
        unit = await session.get_one(OrgUnit, "NH")
        args = (session, unit, *RANGES[1])
        weights = Settings().appraisal_weight_values
        workers = await appraise(*args, Subject.grid_workers, ZONE, weights)
        departments = await appraise(*args, Subject.departments, ZONE, weights)
    totals: dict[str, int] = defaultdict(int)
    for row in [*workers.items, *departments.items]:
        for name, value in row.model_dump().items():
            if isinstance(value, int) and name != "rank":
                totals[name] += value
    assert totals["reports"] > totals["valid_reports"] > 0
    assert totals["checks"] > totals["checks_on_time"] > 0
    assert totals["verifications"] > totals["verifications_on_time"] > 0
    assert totals["public_first"] > 0 and totals["patrol_days"] > 0
    assert totals["handled"] > totals["closed"] > totals["closed_on_time"] > 0
    assert totals["reworked"] > 0 and totals["reopened"] > 0 and totals["returned"] > 0
    assert totals["assists"] >= totals["assists_done"] > 0
    assert totals["rated"] > totals["satisfied"] > 0


async def test_generated_mix_is_realistic(generated: Database) -> None:
    async with generated.sessions() as session:
        stats = await service.closure_stats(
            session,
            await session.get_one(OrgUnit, "NH"),
            *RANGES[1],
            GroupBy.month,
            ZONE,
            datetime(2026, 11, 23, tzinfo=UTC),
        )
        on_patrol = await session.scalar(
            select(func.count()).select_from(Ticket).where(Ticket.source == "patrol")
        )
    totals = stats.totals
    assert totals.reported > 1500
    assert 0.85 < (totals.closure_rate or 0) <= 1
    assert 0.2 < totals.self_resolved / (on_patrol or 1) < 0.45  # only a worker solves on site
    assert 0 < totals.escalated < totals.reported * 0.15
    assert 0 < totals.reworked < totals.reported * 0.1
    assert 0.4 < totals.rated / totals.closed < 0.8
    assert len(stats.items) == 34  # months from 2024-02 to 2026-11


async def test_every_change_keeps_the_rollups_exact(
    generated: Database, api: Api, clock: FrozenClock, settings: Settings
) -> None:
    for status in ("reported", "suspended", "feedback", "rated", "rejected", "merged"):
        await api.ticket_in(status)
    reworked = (await api.ticket_in("feedback"))["id"]
    await api.must(reworked, "verify", "worker", {"passed": False})
    returned = (await api.ticket_in("dispatched"))["id"]
    await api.must(returned, "return", "handler", {"note": "不属于本部门"})
    on_site = await api.report(resolved_on_site=True)
    escalated = (await api.report(at=IN_GC02_1))["id"]
    await api.must(escalated, "escalate", "gc02_dispatcher", {"note": "需街道协调"})
    confirmed, refuted = (
        (await api.ticket_in("checking"))["id"],
        (await api.ticket_in("checking"))["id"],
    )
    await api.must(confirmed, "confirm", "worker", {"note": "属实"})
    await api.must(refuted, "refute", "worker", {"note": "不属实"})
    assisted = await api.ticket_in("rated", assisted=True)
    redispatched = (await api.ticket_in("dispatched", assisted=True))["id"]
    await api.must(
        redispatched,
        "dispatch",
        "dispatcher",
        {"department_code": "NH-XF", "assisting_department_codes": []},
    )
    await api.must(assisted["id"], "reopen", "worker", {"note": "问题复发"})
    for at in (IN_GC01_1, IN_GC01_1, IN_GC02_1):
        body = {"client_id": str(uuid.uuid4()), "lat": at[0], "lon": at[1]}
        assert (await api.post("/api/v1/clock-ins", "worker", body)).status_code == 201
    stale = await api.report()
    await api.must(stale["id"], *DISPATCH)
    refused = await api.act(
        stale["id"], "reject", "dispatcher", {"note": "x", "expected_version": 1}
    )
    assert refused.status_code == 409
    assert on_site["status"] == "closed"
    await assert_rollups_exact(generated)

    # Deadlines missed: the scheduler warns, marks overdue and escalates, in batches.
    for _ in range(3):
        clock.advance(timedelta(hours=6))
        await scheduler.run_pass(generated, settings, clock.now())
    await assert_rollups_exact(generated)


async def test_concurrent_changes_in_one_community(
    generated: Database, api: Api, database: Database
) -> None:
    """Reports, dispatches, returns and rejections of tickets counted in the same rollup rows
    and community sums, all at once: returns move tickets between two rows the opposite way of
    dispatches, and reports add to the rows and sums that rejections take from."""
    fresh = [(await api.report())["id"] for _ in range(8)]
    dispatched = [(await api.ticket_in("dispatched"))["id"] for _ in range(4)]
    responses = await asyncio.gather(
        *(api.act(t, *DISPATCH) for t in fresh[:4]),
        *(api.act(t, "reject", "dispatcher", {"note": "重复"}) for t in fresh[4:]),
        *(api.act(t, "return", "handler", {"note": "不属于本部门"}) for t in dispatched),
        *(api.post("/api/v1/events", "worker", event_body(IN_GC01_1)) for _ in range(4)),
    )
    statuses = [r.status_code for r in responses]
    if database.is_sqlite:  # one writer at a time: others may find the database busy
        assert set(statuses) <= {200, 201, 409, 503}, [r.text for r in responses]
        assert {200, 201} & set(statuses)
    else:
        assert statuses == [200] * 12 + [201] * 4, [r.text for r in responses]
    await assert_rollups_exact(generated)


async def test_rollups_of_another_time_zone_are_not_read(
    generated: Database, clock: FrozenClock
) -> None:
    async with generated.sessions() as session:
        await rollups.rebuild(session, "UTC")
        await session.commit()
        assert not await rollups.built_for(session, ZONE)
        unit = await session.get_one(OrgUnit, "NH")
        args = (session, unit, *RANGES[0], GroupBy.month, ZONE, clock.now())
        assert await service.closure_stats(*args) == await service.closure_stats(
            *args, use_rollups=False
        )
        await rollups.rebuild(session, ZONE)
        await session.commit()
        assert await rollups.built_for(session, ZONE)


@pytest.mark.parametrize(
    ("since", "until", "months", "days"),
    [
        ("2026-01-01", "2026-03-01", ("2026-01-01", "2026-03-01"), []),
        (
            "2025-12-15",
            "2026-03-10",
            ("2026-01-01", "2026-03-01"),
            [("2025-12-15", "2026-01-01"), ("2026-03-01", "2026-03-10")],
        ),
        ("2026-01-02", "2026-01-31", None, [("2026-01-02", "2026-01-31")]),
        ("2025-11-30", "2026-02-01", ("2025-12-01", "2026-02-01"), [("2025-11-30", "2025-12-01")]),
    ],
)
def test_a_range_in_months_and_days(
    since: str, until: str, months: tuple[str, str] | None, days: list[tuple[str, str]]
) -> None:
    cut = service.spans(local(since), local(until), ZONE, with_months=True)
    assert cut.months == ((local(months[0]), local(months[1])) if months else None)
    assert cut.days == [(local(a), local(b)) for a, b in days]
    assert cut.rest == []


def test_parts_of_days_and_ranges_without_months() -> None:
    since, until = (
        local("2026-01-01") + timedelta(hours=5),
        local("2026-03-01") + timedelta(hours=1),
    )
    cut = service.spans(since, until, ZONE, with_months=True)
    assert cut.months == (local("2026-02-01"), local("2026-03-01"))
    assert cut.days == [(local("2026-01-02"), local("2026-02-01"))]
    assert cut.rest == [(since, local("2026-01-02")), (local("2026-03-01"), until)]
    by_week = service.spans(since, until, ZONE, with_months=False)
    assert by_week.months is None and by_week.days == [(local("2026-01-02"), local("2026-03-01"))]
    inside = service.spans(since, since + timedelta(hours=3), ZONE, with_months=True)
    assert (inside.months, inside.days, inside.rest) == (
        None,
        [],
        [(since, since + timedelta(hours=3))],
    )


async def test_a_deadlock_is_a_conflict_to_retry(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    class Deadlock(Exception):
        sqlstate = "40P01"

    async def collide(*_: Any, **__: Any) -> None:
        raise DBAPIError("UPDATE closure_rollups …", {}, Deadlock("deadlock detected"))

    monkeypatch.setattr(service, "closure_stats", collide)
    response = await api.get(
        "/api/v1/stats/closure?from=2026-11-01&to=2026-12-01&org_unit=NH", "admin"
    )
    assert response.status_code == 409
    assert "try again" in response.json()["detail"]


async def test_generated_tickets_keep_the_service_rules(
    world: Database, clock: FrozenClock
) -> None:
    """What the generator writes is what the service would: steps in order and in the past,
    closed tickets with a closing time, rated ones with a rating, late ones overdue. Most
    tickets are reported in the last days, where steps must be drawn closer to fit."""
    async with world.sessions() as session:
        await generate.generate_tickets(session, "NH", 1500, 0.02, clock.now(), 3, ZONE)
        tickets = (await session.scalars(select(Ticket))).all()
    now = clock.now()
    for ticket in tickets:
        steps = [ticket.reported_at, ticket.dispatched_at, ticket.feedback_at, ticket.closed_at]
        taken = [step for step in steps if step is not None]
        assert taken == sorted(taken) and taken[-1] <= now, ticket.status
        assert ticket.suspended_at is None or ticket.suspended_at <= now
        assert (ticket.closed_at is not None) == (ticket.status in ("closed", "rated"))
        assert (ticket.rating is not None) == (ticket.status == "rated")
        assert ticket.self_resolved <= (ticket.status in ("closed", "rated"))
        assert ticket.deadline_at is not None
        if ticket.feedback_at and ticket.feedback_at > ticket.deadline_at:
            assert ticket.overdue
        if ticket.status in ("dispatched", "in_progress") and ticket.deadline_at < now:
            assert ticket.overdue


def test_the_change_marker_is_not_a_column_rollups_read() -> None:
    """Every change flags it so that the version is checked; the upkeep must not see it."""
    assert CHANGE_MARKER not in rollups._DEPENDS_ON


async def test_a_flush_of_many_tickets_keeps_the_rollups_exact(generated: Database) -> None:
    """Beyond one statement's worth of tickets, changed and closed in one flush."""
    async with generated.sessions() as session:
        tickets = (
            await session.scalars(
                select(Ticket).where(Ticket.status != "merged").order_by(Ticket.id).limit(160)
            )
        ).all()
        assert len(tickets) > rollups._CHUNK
        for number, ticket in enumerate(tickets):
            ticket.status = "rejected" if number % 2 else "merged"
            ticket.rework_count += number % 3
        await session.commit()
    await assert_rollups_exact(generated)


async def test_a_sql_expression_on_a_rollup_column_is_counted(generated: Database) -> None:
    """The old value is the one loaded; the new one is read back after the flush."""
    async with generated.sessions() as session:
        ticket = await session.scalar(select(Ticket).order_by(Ticket.id).limit(1))
        assert ticket is not None
        ticket.rework_count = Ticket.rework_count + 1  # type: ignore[assignment]
        await session.commit()
    await assert_rollups_exact(generated)


def test_a_status_change_moves_the_rollups_only_across_the_sets_their_sql_tests() -> None:
    """Read from the measures' SQL: a claim or a feedback (open to open) moves nothing, a
    verification (open to closed) or a rejection does; the appraisal reads acceptance only."""
    assert set(rollups._STATUS_SETS or []) == {OPEN_STATUSES, CLOSED_STATUSES, NOT_ACCEPTED}
    assert appraisal_rollups._STATUS_SETS == [NOT_ACCEPTED]
    sets = rollups._STATUS_SETS
    assert not measures.crosses("dispatched", "in_progress", sets)
    assert not measures.crosses("in_progress", "feedback", sets)
    assert measures.crosses("feedback", "closed", sets)
    assert measures.crosses("reported", "rejected", sets)
    assert measures.crosses("reported", "rejected", None) and not measures.crosses("x", "x", None)


async def test_overdue_open_tickets_are_counted_from_their_index_alone(
    generated: Database, clock: FrozenClock
) -> None:
    """On PostgreSQL, the count of overdue open tickets beside the rollups reads a district's
    or a town's open tickets from their index alone (`OVERDUE_COUNT_READS`), whatever the
    grouping: no visit to each ticket's page."""
    if generated.is_sqlite:
        pytest.skip("SQLite's indexes carry no other columns")
    async with generated.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("VACUUM (ANALYZE) tickets")  # pages all-visible
    now = clock.now()
    params = {"area": None, "since": now - timedelta(days=365), "until": now, "now": now}
    plans = {}
    async with generated.engine.connect() as connection:
        await connection.exec_driver_sql("SET enable_seqscan = off")
        await connection.exec_driver_sql("SET enable_bitmapscan = off")
        driver = (await connection.get_raw_connection()).driver_connection
        for level, area in ((Level.district, "NH"), (Level.town, "GC")):
            for group_by in GroupBy:
                if not service.rollups_serve(level, group_by):
                    continue
                count = service._overdue_open(level, group_by, "postgresql", ZONE)
                sql, parameters = count._compile(connection.dialect)
                args = [p.of({**params, "area": area}) for p in parameters]
                plan = "\n".join(r[0] for r in await driver.fetch(f"EXPLAIN {sql}", *args))
                plans[level, group_by] = plan
    assert len(plans) == 2 * len(GroupBy)
    for shape, plan in plans.items():
        assert "Index Only Scan using ix_tickets_open" in plan, (shape, plan)
