import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.tickets.machine import Action
from app.tickets.models import Ticket, TicketHistory
from app.tickets.schemas import ActionIn
from app.tickets.service import apply_action
from tests.helpers import IN_DL01_1, Api, count, event_body
from tests.integration.test_rollups import assert_rollups_exact


async def test_full_life_of_a_ticket(api: Api, clock: FrozenClock) -> None:
    token = await api.login("worker")
    assert token.status_code == 200
    assert token.json()["token_type"] == "bearer"

    ticket = await api.report(description="消防通道被车辆堵塞", category_code="fire_lane")
    tid = ticket["id"]
    assert ticket["status"] == "reported"
    assert (ticket["owner_unit_code"], ticket["grid_code"], ticket["level"]) == (
        "GC01",
        "GC01-1",
        "community",
    )
    assert ticket["number"] == f"NH-20261123-{tid:06d}"
    assert ticket["deadline_at"] is not None  # the dispatch limit runs

    clock.advance(timedelta(minutes=10))
    dispatched = await api.must(tid, "dispatch", "dispatcher", {"department_code": "NH-CG"})
    assert dispatched["deadline_at"] == "2026-11-23T04:10:00Z"  # fire_lane: 2 hours
    assert dispatched["time_limit"] == {"value": 2, "unit": "hours"}

    assert (await api.get(f"/api/v1/tickets/{tid}", "handler")).status_code == 200
    await api.must(tid, "claim", "handler")
    await api.must(tid, "feedback", "handler", {"note": "已挪车"})
    clock.advance(timedelta(minutes=30))
    rework = await api.must(tid, "verify", "worker", {"passed": False, "note": "仍有车辆"})
    assert rework["status"] == "in_progress" and rework["rework_count"] == 1
    assert rework["deadline_at"] == "2026-11-23T04:40:00Z"  # a fresh 2-hour deadline
    await api.must(tid, "feedback", "handler", {"note": "已全部清理"})
    closed = await api.must(tid, "verify", "worker", {"passed": True})
    assert closed["status"] == "closed" and closed["closed_at"] is not None
    rated = await api.must(tid, "rate", "worker", {"score": 5, "comment": "处理及时"})
    assert rated["status"] == "rated" and rated["rating"] == 5
    assert rated["overdue"] is False and rated["warning"] is None

    history = await api.history(tid, "worker")
    assert [(h["action"], h["to_status"]) for h in history] == [
        ("report", "reported"),
        ("dispatch", "dispatched"),
        ("claim", "in_progress"),
        ("feedback", "feedback"),
        ("verify", "in_progress"),
        ("feedback", "feedback"),
        ("verify", "closed"),
        ("rate", "rated"),
    ]
    assert [h["actor"] for h in history] == [
        "worker",
        "dispatcher",
        "handler",
        "handler",
        "worker",
        "handler",
        "worker",
        "worker",
    ]
    assert rated["version"] == len(history)


async def test_resolved_on_site_is_filed_closed(api: Api) -> None:
    ticket = await api.report(resolved_on_site=True)
    assert ticket["status"] == "closed"
    assert ticket["self_resolved"] is True
    assert ticket["closed_at"] == ticket["reported_at"]
    assert ticket["deadline_at"] is None and ticket["warning"] is None


async def test_resend_of_a_report_returns_the_same_ticket(api: Api, world: Database) -> None:
    first = await api.report()
    body = event_body()
    created = await api.post("/api/v1/events", "worker", body)
    again = await api.post("/api/v1/events", "worker", body)
    # The same client_id from another worker is another report.
    other = await api.post(
        "/api/v1/events", "worker2", {**body, "lat": IN_DL01_1[0], "lon": IN_DL01_1[1]}
    )

    assert (created.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json()["id"] == created.json()["id"] != first["id"]
    assert other.json()["id"] != created.json()["id"]
    assert await count(world, Ticket) == 3


async def test_concurrent_identical_reports_make_one_ticket(api: Api, world: Database) -> None:
    body = event_body()
    await api.headers("worker")

    responses = await asyncio.gather(
        *(api.post("/api/v1/events", "worker", body) for _ in range(4))
    )

    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    await assert_rollups_exact(world)  # counted once, by the one that filed it
    assert await count(world, Ticket) == 1
    assert await count(world, TicketHistory) == 1


async def test_concurrent_claims_one_wins(api: Api) -> None:
    ticket = await api.ticket_in("dispatched")
    await api.headers("handler")
    await api.headers("admin")

    responses = await asyncio.gather(
        api.act(ticket["id"], "claim", "handler"), api.act(ticket["id"], "claim", "admin")
    )

    assert sorted(r.status_code for r in responses) == [200, 409]
    claims = [h for h in await api.history(ticket["id"]) if h["action"] == "claim"]
    assert len(claims) == 1


async def test_concurrent_dispatches_one_wins(api: Api) -> None:
    ticket = await api.ticket_in("reported")
    for user in ("dispatcher", "town_dispatcher", "district_dispatcher"):
        await api.headers(user)
    version = ticket["version"]

    responses = await asyncio.gather(
        *(
            api.act(
                ticket["id"],
                "dispatch",
                user,
                {"department_code": "NH-CG", "expected_version": version},
            )
            for user in ("dispatcher", "town_dispatcher", "district_dispatcher")
        )
    )

    assert sorted(r.status_code for r in responses) == [200, 409, 409]
    dispatches = [h for h in await api.history(ticket["id"]) if h["action"] == "dispatch"]
    assert len(dispatches) == 1
    current = (await api.get(f"/api/v1/tickets/{ticket['id']}", "admin")).json()
    assert current["version"] == version + 1


async def test_stale_expected_version_is_409(api: Api) -> None:
    ticket = await api.ticket_in("dispatched")
    response = await api.act(
        ticket["id"], "claim", "handler", {"expected_version": ticket["version"] - 1}
    )
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/stale-version"
    assert response.json()["current_version"] == ticket["version"]


async def test_lost_update_is_refused_even_without_expected_version(
    world: Database, api: Api
) -> None:
    """Two transactions read the same version; the second to write gets StaleDataError."""
    ticket = await api.ticket_in("dispatched")
    settings = Settings(env="test")

    async def claim(session: AsyncSession, target: Ticket) -> None:
        await apply_action(
            session,
            target,
            Action.claim,
            ActionIn(),
            user=None,
            settings=settings,
            now=target.reported_at,
        )
        await session.commit()

    async with world.sessions() as first, world.sessions() as second:
        mine = await first.get(Ticket, ticket["id"])
        theirs = await second.get(Ticket, ticket["id"])
        assert mine is not None and theirs is not None
        await claim(first, mine)
        with pytest.raises(StaleDataError):
            await claim(second, theirs)

    claims = [h for h in await api.history(ticket["id"]) if h["action"] == "claim"]
    assert len(claims) == 1


async def test_changes_in_one_transaction_are_each_written_and_counted_once(
    world: Database, api: Api
) -> None:
    """As the scheduler makes them: each change is written as it is made (one statement on
    PostgreSQL), `version` counts each once, and nothing is left for the commit to write."""
    tickets = [await api.ticket_in("dispatched") for _ in range(2)]
    settings = Settings(env="test")
    async with world.sessions() as session:
        first, second = [await session.get_one(Ticket, t["id"]) for t in tickets]
        for target, action in (
            (first, Action.claim),
            (second, Action.claim),
            (first, Action.suspend),
        ):
            now = target.reported_at
            await apply_action(
                session, target, action, ActionIn(), user=None, settings=settings, now=now
            )
            assert not session.new and not any(map(session.is_modified, session.dirty))
        await session.commit()

    stored = [(await api.get(f"/api/v1/tickets/{t['id']}", "admin")).json() for t in tickets]
    assert [t["status"] for t in stored] == ["suspended", "in_progress"]
    assert [
        t["version"] - before["version"] for t, before in zip(stored, tickets, strict=True)
    ] == [2, 1]
    steps = [[h["action"] for h in await api.history(t["id"])][-2:] for t in tickets]
    assert steps == [["claim", "suspend"], ["dispatch", "claim"]]
