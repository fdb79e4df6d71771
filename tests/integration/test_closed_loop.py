"""The closed loop continued (API.md v1.1): checks on site, assisting departments, urges,
reopens and everyone's to-do list."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.notifications.models import OutboxMessage
from app.tickets.models import TicketAssist
from app.tickets.scheduler import run_pass
from tests.helpers import IN_DL01_1, IN_GC01_1, Api
from tests.integration.test_reliability import assert_legal_walk
from tests.integration.test_rollups import assert_rollups_exact

CHECK_NOTE = {"note": "请网格员现场核实"}


async def ticket(api: Api, tid: int, as_: str = "admin") -> dict[str, Any]:
    response = await api.get(f"/api/v1/tickets/{tid}", as_)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def listed(api: Api, as_: str, query: str) -> list[int]:
    response = await api.get(f"/api/v1/tickets?{query}", as_)
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()["items"]]


async def assert_refused_and_unchanged(
    api: Api, tid: int, action: str, as_: str, body: Any, status: int
) -> dict[str, Any]:
    before, history = await ticket(api, tid), await api.history(tid)
    response = await api.act(tid, action, as_, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await ticket(api, tid) == before
    assert await api.history(tid) == history
    return dict(response.json())


# 核实: checks on site -----------------------------------------------------------------------


async def test_a_check_runs_its_limit_and_the_grid_worker_confirms_it(api: Api) -> None:
    # reported by another worker inside GC01-1: `worker`, of that grid, checks it
    tid = (await api.report("worker2", at=IN_GC01_1))["id"]
    assert (await api.get(f"/api/v1/tickets/{tid}", "worker")).status_code == 404

    checking = await api.must(tid, "request_check", "dispatcher", CHECK_NOTE)

    assert checking["status"] == "checking"
    assert checking["time_limit"] == {"value": 2, "unit": "working_hours"}
    assert checking["deadline_at"] == "2026-11-23T04:00:00Z"  # 10:00 + 2 working hours
    assert checking["warning"] == "green"
    seen = await ticket(api, tid, "worker")
    assert seen["allowed_actions"] == ["confirm", "refute"]
    assert (await api.get(f"/api/v1/tickets/{tid}", "worker2")).status_code == 200  # reporter
    assert (await api.act(tid, "confirm", "worker2")).status_code == 403  # not of the grid

    confirmed = await api.must(tid, "confirm", "worker", {"note": "现场属实"})

    assert confirmed["status"] == "reported"
    assert confirmed["checked_at"] == "2026-11-23T02:00:00Z"
    assert confirmed["time_limit"] == {"value": 60, "unit": "minutes"}  # dispatch limit afresh
    assert (await api.get(f"/api/v1/tickets/{tid}", "worker")).status_code == 404  # checked
    history = await api.history(tid)
    assert [(h["action"], h["to_status"]) for h in history] == [
        ("report", "reported"),
        ("request_check", "checking"),
        ("confirm", "reported"),
    ]


async def test_a_refuted_report_is_rejected_and_refute_needs_a_note(api: Api) -> None:
    tid = (await api.must((await api.report())["id"], "request_check", "dispatcher"))["id"]

    await assert_refused_and_unchanged(api, tid, "refute", "worker", {}, 422)
    await assert_refused_and_unchanged(api, tid, "confirm", "worker2", {}, 404)  # other grid

    refuted = await api.must(tid, "refute", "worker", {"note": "现场未发现该问题"})

    assert (refuted["status"], refuted["checked_at"]) == ("rejected", "2026-11-23T02:00:00Z")
    assert refuted["deadline_at"] is not None and refuted["warning"] is None


async def test_the_dispatcher_may_act_on_a_checking_ticket_without_waiting(api: Api) -> None:
    tid = (await api.ticket_in("checking"))["id"]
    assert (await ticket(api, tid, "dispatcher"))["allowed_actions"] == [
        "dispatch",
        "reject",
        "merge",
        "escalate",
        "urge",
    ]
    dispatched = await api.must(tid, "dispatch", "dispatcher", {"department_code": "NH-CG"})
    assert (dispatched["status"], dispatched["checked_at"]) == ("dispatched", None)


async def test_a_missed_check_escalates_once_and_stays_overdue(
    api: Api, world: Database, settings: Settings, clock: FrozenClock
) -> None:
    tid = (await api.ticket_in("checking"))["id"]

    clock.advance(timedelta(hours=1, minutes=36))  # 80% of 2 working hours
    assert (await run_pass(world, settings, clock.now())).warned == 1
    assert (await ticket(api, tid))["warning"] == "yellow"
    clock.advance(timedelta(minutes=24))
    assert (await run_pass(world, settings, clock.now())).escalated == 1
    assert (await run_pass(world, settings, clock.now())).handled == 0

    town = await ticket(api, tid)
    assert (town["status"], town["level"], town["overdue"]) == ("checking", "town", True)
    assert town["deadline_at"] == "2026-11-23T07:30:00Z"  # 12:00 + 2 working hours: 15:30
    confirmed = await api.must(tid, "confirm", "worker")
    assert confirmed["overdue"] is True


# 主办/协办: assisting departments ---------------------------------------------------------


@pytest.mark.parametrize(
    ("codes", "why"),
    [
        (["NH-CG"], "the lead"),
        (["NH-SZ", "NH-SZ"], "named once"),
        (["NH-NOPE"], "does not exist"),
        (["DL-ZZ"], "does not cover"),
        (["NH-SZ", "NH-XF", "GC-ZZ", "DL-ZZ", "NH-A", "NH-B"], "at most 5"),
    ],
)
async def test_a_bad_assisting_list_is_refused_and_writes_nothing(
    api: Api, codes: list[str], why: str
) -> None:
    tid = (await api.report())["id"]
    body = {"department_code": "NH-CG", "assisting_department_codes": codes}

    problem = await assert_refused_and_unchanged(api, tid, "dispatch", "dispatcher", body, 422)

    assert problem["errors"][0]["loc"][:2] == ["body", "assisting_department_codes"]
    assert not [a async for a in _assists(api)]


async def _assists(api: Api):  # type: ignore[no-untyped-def]
    for item in (await api.get("/api/v1/tickets", "admin")).json()["items"]:
        for part in item["assists"]:
            yield part


async def test_assisting_departments_answer_once_before_the_lead_gives_feedback(
    api: Api, world: Database
) -> None:
    tid = (await api.ticket_in("in_progress", assisted=True))["id"]
    assert (await ticket(api, tid, "sz_handler"))["allowed_actions"] == ["assist"]
    assert (await api.get(f"/api/v1/tickets/{tid}", "xf_handler")).status_code == 404
    assert await listed(api, "sz_handler", "awaiting=me") == [tid]

    problem = await assert_refused_and_unchanged(
        api, tid, "feedback", "handler", {"note": "已处置"}, 409
    )
    assert "NH-SZ" in problem["detail"]
    await assert_refused_and_unchanged(api, tid, "assist", "handler", {"note": "x"}, 403)
    await assert_refused_and_unchanged(api, tid, "assist", "admin", {"note": "x"}, 403)
    await assert_refused_and_unchanged(api, tid, "assist", "xf_handler", {"note": "x"}, 404)
    await assert_refused_and_unchanged(api, tid, "suspend", "sz_handler", {"note": "x"}, 403)
    await assert_refused_and_unchanged(api, tid, "assist", "sz_handler", {}, 422)

    assisted = await api.must(tid, "assist", "sz_handler", {"note": "已疏通管道"})

    assert assisted["status"] == "in_progress"
    assert assisted["assists"] == [
        {"department_code": "NH-SZ", "done_at": "2026-11-23T02:00:00Z", "note": "已疏通管道"}
    ]
    await assert_refused_and_unchanged(api, tid, "assist", "sz_handler", {"note": "再次"}, 409)
    assert await listed(api, "sz_handler", "awaiting=me") == []
    assert (await api.must(tid, "feedback", "handler", {"note": "已处置"}))["status"] == "feedback"
    async with world.sessions() as session:
        part = (await session.scalars(select(TicketAssist))).one()
        assert (part.done_by, part.on_time) == ("sz_handler", True)


async def test_a_redispatch_replaces_the_list_and_keeps_parts_done(api: Api) -> None:
    tid = (await api.ticket_in("dispatched", assisted=True))["id"]
    await api.must(tid, "assist", "sz_handler", {"note": "已配合"})

    longer = {"department_code": "NH-CG", "time_limit": {"value": 8, "unit": "hours"}}
    kept = await api.must(tid, "dispatch", "dispatcher", longer)
    assert [a["department_code"] for a in kept["assists"]] == ["NH-SZ"]  # no list: kept

    body = {"department_code": "NH-CG", "assisting_department_codes": ["NH-SZ", "NH-XF"]}
    both = await api.must(tid, "dispatch", "dispatcher", body)
    assert [(a["department_code"], a["done_at"] is not None) for a in both["assists"]] == [
        ("NH-SZ", True),
        ("NH-XF", False),
    ]
    # the new lead may not be in the list it keeps
    await assert_refused_and_unchanged(
        api, tid, "dispatch", "dispatcher", {**longer, "department_code": "NH-XF"}, 422
    )

    cleared = await api.must(
        tid,
        "dispatch",
        "dispatcher",
        {"department_code": "NH-CG", "assisting_department_codes": []},
    )
    assert cleared["assists"] == []
    assert (await api.get(f"/api/v1/tickets/{tid}", "sz_handler")).status_code == 404


# 督办: urges ----------------------------------------------------------------------------


async def test_an_urge_counts_and_moves_nothing_else(api: Api, clock: FrozenClock) -> None:
    tid = (await api.ticket_in("dispatched"))["id"]
    other = (await api.ticket_in("dispatched"))["id"]
    before = await ticket(api, tid)
    clock.advance(timedelta(minutes=5))

    await assert_refused_and_unchanged(api, tid, "urge", "supervisor", {}, 422)
    urged = await api.must(tid, "urge", "supervisor", {"note": "群众反映强烈"})

    assert urged["urge_count"] == 1 and urged["version"] == before["version"] + 1
    assert urged["updated_at"] == "2026-11-23T02:05:00Z" != before["updated_at"]
    unchanged = ("status", "level", "deadline_at", "department_code", "owner_unit_code")
    assert {k: urged[k] for k in unchanged} == {k: before[k] for k in unchanged}
    assert (await api.must(tid, "urge", "dispatcher", {"note": "再催"}))["urge_count"] == 2
    assert await listed(api, "supervisor", "urged=true") == [tid]
    assert await listed(api, "supervisor", "urged=false") == [other]
    assert (await ticket(api, tid, "supervisor"))["allowed_actions"] == ["urge"]
    await assert_refused_and_unchanged(api, tid, "urge", "dl_supervisor", {"note": "x"}, 404)
    await assert_refused_and_unchanged(api, tid, "claim", "supervisor", None, 403)


async def test_a_dispatcher_urges_only_tickets_owned_at_or_below_their_unit(api: Api) -> None:
    tid = (await api.ticket_in("reported"))["id"]
    await api.must(tid, "escalate", "dispatcher", {"note": "需街道协调"})

    await assert_refused_and_unchanged(api, tid, "urge", "dispatcher", {"note": "x"}, 403)
    assert (await api.must(tid, "urge", "gc_supervisor", {"note": "x"}))["urge_count"] == 1


# 重办: reopens -------------------------------------------------------------------------


async def test_a_reopened_ticket_goes_back_to_its_department_with_a_fresh_deadline(
    api: Api, clock: FrozenClock
) -> None:
    tid = (await api.ticket_in("rated"))["id"]
    clock.advance(timedelta(days=3))

    reopened = await api.must(tid, "reopen", "dispatcher", {"note": "回访不满意"})

    assert (reopened["status"], reopened["department_code"]) == ("dispatched", "NH-CG")
    assert (reopened["closed_at"], reopened["rating"], reopened["rating_comment"]) == (
        None,
        None,
        None,
    )
    assert reopened["reopen_count"] == 1
    assert reopened["dispatched_at"] == "2026-11-26T02:00:00Z"
    assert reopened["deadline_at"] == "2026-11-26T06:00:00Z"  # garbage: 4 hours again
    last = (await api.history(tid))[-1]
    assert (last["action"], last["from_status"], last["to_status"]) == (
        "reopen",
        "rated",
        "dispatched",
    )
    assert last["details"]["rating"] == 5
    assert [h["action"] for h in await api.history(tid)].count("rate") == 1  # kept


async def test_reopen_only_within_the_window_and_only_when_closed(
    api: Api, clock: FrozenClock
) -> None:
    tid = (await api.ticket_in("closed"))["id"]
    note = {"note": "回访不满意"}
    await assert_refused_and_unchanged(
        api, (await api.ticket_in("feedback"))["id"], "reopen", "dispatcher", note, 409
    )
    await assert_refused_and_unchanged(api, tid, "reopen", "worker2", note, 404)
    clock.advance(timedelta(days=30, seconds=1))

    problem = await assert_refused_and_unchanged(api, tid, "reopen", "dispatcher", note, 409)

    assert "30 days" in problem["detail"]
    assert "reopen" not in (await ticket(api, tid, "worker"))["allowed_actions"]


async def test_the_reporter_reopens_a_self_resolved_ticket_back_to_dispatch(api: Api) -> None:
    tid = (await api.report(resolved_on_site=True))["id"]

    reopened = await api.must(tid, "reopen", "worker", {"note": "问题又出现了"})

    assert (reopened["status"], reopened["department_code"]) == ("reported", None)
    assert reopened["time_limit"] == {"value": 60, "unit": "minutes"}


async def test_statistics_count_reopens_and_the_latest_rating(
    api: Api, world: Database, clock: FrozenClock
) -> None:
    tid = (await api.ticket_in("rated"))["id"]  # rated 5
    await api.ticket_in("closed")
    query = "/api/v1/stats/closure?org_unit=NH&from=2026-11-01&to=2026-12-01"

    await api.must(tid, "reopen", "worker", {"note": "又脏了"})
    reopened = (await api.get(query, "supervisor")).json()["totals"]
    assert (reopened["closed"], reopened["reopened"], reopened["reopen_rate"]) == (1, 1, 0.5)
    assert (reopened["rated"], reopened["open"]) == (0, 1)
    await assert_rollups_exact(world)

    for action, user, body in [
        ("claim", "handler", None),
        ("feedback", "handler", {"note": "重新清理"}),
        ("verify", "worker", {"passed": True}),
        ("rate", "worker", {"score": 2}),
    ]:
        await api.must(tid, action, user, body)
    again = (await api.get(query, "supervisor")).json()["totals"]
    assert (again["closed"], again["reopened"], again["rated"], again["satisfied"]) == (2, 1, 1, 0)
    assert (await ticket(api, tid))["reopen_count"] == 1
    await assert_rollups_exact(world)


# To-do lists ----------------------------------------------------------------------------


async def test_everyones_to_do_list(api: Api) -> None:
    checking = (await api.ticket_in("checking"))["id"]
    feedback = (await api.ticket_in("feedback"))["id"]
    closed = (await api.ticket_in("closed"))["id"]
    await api.ticket_in("rated")
    await api.report(resolved_on_site=True)  # closed, but nothing to rate
    reported = (await api.ticket_in("reported"))["id"]
    extension = (await api.ticket_in("in_progress"))["id"]
    await api.must(
        extension, "request_extension", "handler", {"time_limit": {"value": 1, "unit": "hours"}}
    )
    dispatched = (await api.ticket_in("dispatched"))["id"]
    escalated = (await api.ticket_in("reported"))["id"]
    await api.must(escalated, "escalate", "dispatcher", {"note": "需街道协调"})
    elsewhere = (await api.report("worker2", at=IN_DL01_1))["id"]

    assert await listed(api, "worker", "awaiting=me") == [closed, feedback, checking]
    first = (await api.get("/api/v1/tickets?awaiting=me&limit=2", "worker")).json()
    assert [t["id"] for t in first["items"]] == [closed, feedback]
    rest = f"awaiting=me&limit=2&cursor={first['next_cursor']}"
    assert await listed(api, "worker", rest) == [checking]
    assert await listed(api, "worker2", "awaiting=me") == []
    assert await listed(api, "handler", "awaiting=me") == [dispatched, extension]
    assert await listed(api, "dispatcher", "awaiting=me") == [extension, reported]
    assert await listed(api, "town_dispatcher", "awaiting=me") == [escalated]
    assert await listed(api, "dl_dispatcher", "awaiting=me") == [elsewhere]
    assert await listed(api, "supervisor", "awaiting=me") == []
    assert await listed(api, "admin", "awaiting=me") == []
    bad = await api.get("/api/v1/tickets?awaiting=them", "worker")
    assert bad.status_code == 422


async def test_a_grid_worker_verifies_their_grids_tickets(api: Api) -> None:
    tid = (await api.report("worker2", at=IN_GC01_1))["id"]
    for action, user, body in [
        ("dispatch", "dispatcher", {"department_code": "NH-CG"}),
        ("claim", "handler", None),
        ("feedback", "handler", {"note": "已清理"}),
    ]:
        await api.must(tid, action, user, body)
    assert "verify" in (await ticket(api, tid, "worker"))["allowed_actions"]

    closed = await api.must(tid, "verify", "worker", {"passed": True})

    assert closed["status"] == "closed"
    assert (await api.get(f"/api/v1/tickets/{tid}", "worker")).status_code == 404
    assert (await api.act(tid, "rate", "worker2", {"score": 5})).status_code == 200


# Webhooks ---------------------------------------------------------------------------------


async def test_every_new_step_is_notified(
    api: Api, world: Database, settings: Settings, clock: FrozenClock
) -> None:
    settings.webhook_urls = "http://127.0.0.1:9/hook"
    tid = (await api.ticket_in("reported"))["id"]
    await api.must(tid, "request_check", "dispatcher")
    await api.must(tid, "confirm", "worker")
    body = {"department_code": "NH-CG", "assisting_department_codes": ["NH-SZ"]}
    await api.must(tid, "dispatch", "dispatcher", body)
    await api.must(tid, "assist", "sz_handler", {"note": "已配合"})
    await api.must(tid, "urge", "supervisor", {"note": "请加快"})
    for action, user, step in [
        ("claim", "handler", None),
        ("feedback", "handler", {"note": "已处置"}),
        ("verify", "worker", {"passed": True}),
        ("reopen", "worker", {"note": "不满意"}),
    ]:
        await api.must(tid, action, user, step)
    refuted = (await api.ticket_in("checking"))["id"]
    await api.must(refuted, "refute", "worker", {"note": "不属实"})

    async with world.sessions() as session:
        query = select(OutboxMessage.event_type).order_by(OutboxMessage.id)
        events = (await session.scalars(query)).all()
    assert [e for e in events if e != "ticket.dispatched"] == [
        "ticket.check_requested",
        "ticket.confirmed",
        "ticket.assisted",
        "ticket.urged",
        "ticket.reopened",
        "ticket.check_requested",
        "ticket.refuted",
    ]


# Races (PostgreSQL) -----------------------------------------------------------------------


async def _race(api: Api, tickets: list[int], moves: list[tuple[str, str, Any]]) -> set[int]:
    """Every move on every ticket at once; the status codes answered."""
    for user in {user for user, _, _ in moves}:
        await api.headers(user)
    responses = await asyncio.gather(
        *(api.act(tid, action, user, body) for tid in tickets for user, action, body in moves)
    )
    return {r.status_code for r in responses}


async def _assert_legal(api: Api, tid: int) -> list[dict[str, Any]]:
    now = await ticket(api, tid)
    history = await api.history(tid)
    assert_legal_walk(history, now)
    return history


@pytest.mark.usefixtures("postgres_only")
async def test_the_lead_and_an_assisting_department_acting_at_once(api: Api) -> None:
    tickets = [(await api.ticket_in("in_progress", assisted=True))["id"] for _ in range(8)]
    moves = [
        ("sz_handler", "assist", {"note": "已配合"}),
        ("sz_handler", "assist", {"note": "重复提交"}),
        ("handler", "feedback", {"note": "已处置"}),
        ("handler", "suspend", {"note": "等待配件"}),
        ("dispatcher", "urge", {"note": "请加快"}),
    ]

    assert await _race(api, tickets, moves) <= {200, 409}
    for tid in tickets:
        actions = [h["action"] for h in await _assert_legal(api, tid)]
        assert actions.count("assist") <= 1
        if "feedback" in actions:
            assert actions.index("assist") < actions.index("feedback")
        done = [a for a in (await ticket(api, tid))["assists"] if a["done_at"]]
        assert len(done) == actions.count("assist")


@pytest.mark.usefixtures("postgres_only")
async def test_a_reopen_racing_a_rating(api: Api) -> None:
    tickets = [(await api.ticket_in("closed"))["id"] for _ in range(8)]
    moves = [
        ("dispatcher", "reopen", {"note": "回访不满意"}),
        ("worker", "rate", {"score": 3}),
        ("worker", "reopen", {"note": "问题又出现"}),
    ]

    assert await _race(api, tickets, moves) <= {200, 409}
    for tid in tickets:
        history = await _assert_legal(api, tid)
        now = await ticket(api, tid)
        assert len(history) > 5  # report, dispatch, claim, feedback, verify and a winner
        assert now["reopen_count"] == [h["action"] for h in history].count("reopen")
        assert (now["rating"] is None) == (history[-1]["action"] == "reopen")
