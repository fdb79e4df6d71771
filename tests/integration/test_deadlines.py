"""Deadlines of the state machine on the natural clock."""

from datetime import UTC, date, datetime, timedelta

from app.clock import FrozenClock
from app.db import Database
from app.timing.service import store_calendar_days
from tests.helpers import Api

EXTEND_1H = {"time_limit": {"value": 1, "unit": "hours"}, "note": "需要协调车辆"}


async def test_suspension_stops_the_clock(api: Api, clock: FrozenClock) -> None:
    ticket = await api.ticket_in("in_progress")  # due 4 hours after dispatch, at 06:00Z
    assert ticket["deadline_at"] == "2026-11-23T06:00:00Z"

    clock.advance(timedelta(hours=1))
    suspended = await api.must(ticket["id"], "suspend", "handler", {"note": "等待业主"})
    assert suspended["warning"] is None
    clock.advance(timedelta(hours=5))  # well past the old deadline, but paused
    resumed = await api.must(ticket["id"], "resume", "handler")

    assert resumed["deadline_at"] == "2026-11-23T11:00:00Z"
    assert resumed["overdue"] is False and resumed["warning"] == "green"
    assert (await api.history(ticket["id"]))[-1]["details"] == {"paused_seconds": 5 * 3600}


async def test_extension_moves_the_deadline_at_most_twice(api: Api, clock: FrozenClock) -> None:
    tid = (await api.ticket_in("in_progress"))["id"]

    pending = await api.must(tid, "request_extension", "handler", EXTEND_1H)
    assert pending["pending_extension"] == {"value": 1, "unit": "hours"}
    again = await api.act(tid, "request_extension", "handler", EXTEND_1H)
    assert again.status_code == 409
    first = await api.must(tid, "approve_extension", "dispatcher")
    assert first["deadline_at"] == "2026-11-23T07:00:00Z" and first["extension_count"] == 1
    assert first["pending_extension"] is None

    await api.must(tid, "request_extension", "handler", EXTEND_1H)
    denied = await api.must(tid, "deny_extension", "dispatcher")
    assert denied["deadline_at"] == "2026-11-23T07:00:00Z" and denied["extension_count"] == 1
    assert (await api.act(tid, "approve_extension", "dispatcher")).status_code == 409

    await api.must(tid, "request_extension", "handler", EXTEND_1H)
    second = await api.must(tid, "approve_extension", "dispatcher")
    assert second["deadline_at"] == "2026-11-23T08:00:00Z" and second["extension_count"] == 2
    third = await api.act(tid, "request_extension", "handler", EXTEND_1H)
    assert third.status_code == 409 and "at most 2" in third.json()["detail"]


async def test_no_extension_once_overdue(api: Api, clock: FrozenClock) -> None:
    tid = (await api.ticket_in("in_progress"))["id"]
    clock.advance(timedelta(hours=4, minutes=1))

    response = await api.act(tid, "request_extension", "handler", EXTEND_1H)

    assert response.status_code == 409
    ticket = (await api.get(f"/api/v1/tickets/{tid}", "handler")).json()
    assert (ticket["overdue"], ticket["warning"]) == (True, "red")


async def test_missed_deadline_stays_on_the_record(api: Api, clock: FrozenClock) -> None:
    tid = (await api.ticket_in("in_progress"))["id"]
    clock.advance(timedelta(hours=5))
    await api.must(tid, "feedback", "handler", {"note": "迟到的处置"})
    closed = await api.must(tid, "verify", "worker", {"passed": True})
    assert closed["overdue"] is True and closed["warning"] is None


async def test_urgent_ticket_uses_the_urgent_limit(api: Api) -> None:
    ticket = await api.ticket_in("dispatched", urgent=True)  # garbage urgent: 2 hours
    assert ticket["time_limit"] == {"value": 2, "unit": "hours"}
    assert ticket["deadline_at"] == "2026-11-23T04:00:00Z"


async def test_dispatch_with_an_explicit_limit(api: Api) -> None:
    tid = (await api.report())["id"]
    ticket = await api.must(
        tid,
        "dispatch",
        "dispatcher",
        {"department_code": "NH-SZ", "time_limit": {"value": 90, "unit": "minutes"}},
    )
    assert ticket["deadline_at"] == "2026-11-23T03:30:00Z"
    assert ticket["department_code"] == "NH-SZ"


async def test_escalation_climbs_to_the_district_and_stops(api: Api, clock: FrozenClock) -> None:
    tid = (await api.ticket_in("dispatched"))["id"]
    clock.advance(timedelta(hours=1))

    town = await api.must(tid, "escalate", "dispatcher", {"note": "社区无法协调"})
    assert (town["level"], town["owner_unit_code"], town["escalation_count"]) == ("town", "GC", 1)
    assert town["status"] == "dispatched" and town["department_code"] == "NH-CG"
    assert town["deadline_at"] == "2026-11-23T07:00:00Z"  # a fresh 4-hour deadline
    district = await api.must(tid, "escalate", "town_dispatcher", {"note": "需区级协调"})
    assert (district["level"], district["owner_unit_code"]) == ("district", "NH")
    top = await api.act(tid, "escalate", "district_dispatcher", {"note": "再升级"})
    assert top.status_code == 409

    levels = [
        (h["from_level"], h["to_level"])
        for h in await api.history(tid)
        if h["action"] == "escalate"
    ]
    assert levels == [("community", "town"), ("town", "district")]


async def test_return_goes_back_to_the_dispatch_queue(api: Api, clock: FrozenClock) -> None:
    tid = (await api.ticket_in("in_progress"))["id"]
    clock.advance(timedelta(minutes=20))
    returned = await api.must(tid, "return", "handler", {"note": "不属于本部门"})
    assert returned["status"] == "reported" and returned["department_code"] is None
    assert returned["deadline_at"] == "2026-11-23T03:20:00Z"  # the 60-minute dispatch limit
    assert (await api.get(f"/api/v1/tickets/{tid}", "handler")).status_code == 404


async def test_a_missed_dispatch_limit_makes_the_ticket_overdue_for_good(
    api: Api, clock: FrozenClock
) -> None:
    tid = (await api.report())["id"]
    clock.advance(timedelta(minutes=61))
    dispatched = await api.must(tid, "dispatch", "dispatcher", {"department_code": "NH-CG"})
    assert (dispatched["overdue"], dispatched["warning"]) == (True, "green")
    claimed = await api.must(tid, "claim", "handler")

    refused = await api.act(tid, "request_extension", "handler", EXTEND_1H)

    assert refused.status_code == 409  # "not yet overdue" is over
    assert "request_extension" not in claimed["allowed_actions"]


async def test_an_extension_cannot_be_approved_once_the_deadline_passed(
    api: Api, clock: FrozenClock
) -> None:
    tid = (await api.ticket_in("in_progress"))["id"]
    await api.must(tid, "request_extension", "handler", EXTEND_1H)
    clock.advance(timedelta(hours=4, minutes=5))

    late = await api.act(tid, "approve_extension", "dispatcher")

    assert late.status_code == 409
    assert (await api.must(tid, "deny_extension", "dispatcher"))["pending_extension"] is None


async def test_resuming_after_no_working_time_keeps_the_deadline(
    api: Api, clock: FrozenClock
) -> None:
    tid = (await api.report(category_code="manhole"))["id"]
    clock.set(datetime(2026, 11, 23, 0, 0, tzinfo=UTC))  # Monday 08:00: starts at 09:00
    three_hours = {"value": 3, "unit": "working_hours"}
    ticket = await api.must(
        tid, "dispatch", "dispatcher", {"department_code": "NH-SZ", "time_limit": three_hours}
    )
    await api.must(tid, "claim", "sz_handler")
    assert ticket["deadline_at"] == "2026-11-23T04:00:00Z"  # 12:00, the end of the morning
    clock.set(datetime(2026, 11, 23, 4, 10, tzinfo=UTC))  # 12:10, the lunch break
    await api.must(tid, "suspend", "sz_handler", {"note": "午休"})
    clock.set(datetime(2026, 11, 23, 5, 20, tzinfo=UTC))  # 13:20, still the break
    resumed = await api.must(tid, "resume", "sz_handler")
    assert resumed["deadline_at"] == "2026-11-23T04:00:00Z"  # not moved to 13:30


async def test_allowed_actions_follow_preconditions(api: Api) -> None:
    tid = (await api.ticket_in("in_progress"))["id"]
    as_dispatcher = (await api.get(f"/api/v1/tickets/{tid}", "dispatcher")).json()
    assert "approve_extension" not in as_dispatcher["allowed_actions"]
    await api.must(tid, "request_extension", "handler", EXTEND_1H)
    as_dispatcher = (await api.get(f"/api/v1/tickets/{tid}", "dispatcher")).json()
    assert {"approve_extension", "deny_extension"} <= set(as_dispatcher["allowed_actions"])

    await api.must(tid, "escalate", "dispatcher", {"note": "需街道协调"})
    below = (await api.get(f"/api/v1/tickets/{tid}", "dispatcher")).json()
    town = (await api.get(f"/api/v1/tickets/{tid}", "town_dispatcher")).json()
    assert below["allowed_actions"] == []
    assert "escalate" in town["allowed_actions"]


async def test_the_calendar_table_moves_working_day_deadlines(
    api: Api, world: Database, clock: FrozenClock
) -> None:
    async with world.sessions() as session:  # a district's extra day off on Tuesday
        await store_calendar_days(session, [(date(2026, 11, 24), False, "区级调休")])
        await session.commit()
    tid = (await api.report(category_code="road_damage"))["id"]  # 2 working days

    ticket = await api.must(tid, "dispatch", "dispatcher", {"department_code": "NH-SZ"})

    assert ticket["deadline_at"] == "2026-11-26T02:00:00Z"  # Monday 10:00 -> Thursday 10:00
