import asyncio
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from app.clock import FrozenClock
from app.db import Database
from app.patrol.models import ClockIn
from tests.helpers import IN_DL01_1, IN_GC01_1, IN_GC02_1, Api, count, event_body

FAR_AWAY = (23.5, 113.9)


async def clock_in(api: Api, as_: str, point: tuple[float, float], **fields: Any) -> httpx.Response:
    body = {"client_id": str(uuid.uuid4()), "lat": point[0], "lon": point[1], **fields}
    return await api.post("/api/v1/clock-ins", as_, body)


async def test_clock_in_inside_and_outside_the_own_grid(api: Api) -> None:
    own = await clock_in(api, "worker", IN_GC01_1)
    other = await clock_in(api, "worker", IN_GC02_1)
    nowhere = await clock_in(api, "worker", FAR_AWAY)

    assert own.status_code == other.status_code == nowhere.status_code == 201
    assert (own.json()["grid_code"], own.json()["inside_grid"]) == ("GC01-1", True)
    assert (other.json()["grid_code"], other.json()["inside_grid"]) == ("GC02-1", False)
    assert (nowhere.json()["grid_code"], nowhere.json()["inside_grid"]) == (None, False)
    assert own.json()["worker"] == "worker"


async def test_replayed_clock_in_returns_the_first_record(api: Api, world: Database) -> None:
    body = {"client_id": str(uuid.uuid4()), "lat": IN_GC01_1[0], "lon": IN_GC01_1[1]}
    await api.headers("worker")

    responses = await asyncio.gather(
        *(api.post("/api/v1/clock-ins", "worker", body) for _ in range(3))
    )
    again = await api.post("/api/v1/clock-ins", "worker", body)

    assert sorted(r.status_code for r in responses) == [200, 200, 201]
    assert again.status_code == 200
    assert len({r.json()["id"] for r in [*responses, again]}) == 1
    assert await count(world, ClockIn) == 1


@pytest.mark.parametrize(
    ("offset", "status"),
    [
        (timedelta(minutes=6), 422),
        (timedelta(minutes=4), 201),
        (-timedelta(days=6, hours=23), 201),
        (-timedelta(days=7, minutes=1), 422),
    ],
)
async def test_clock_in_time_window(
    api: Api, clock: FrozenClock, offset: timedelta, status: int
) -> None:
    response = await clock_in(api, "worker", IN_GC01_1, at=(clock.now() + offset).isoformat())
    assert response.status_code == status, response.text


async def test_only_grid_workers_clock_in(api: Api) -> None:
    assert (await clock_in(api, "dispatcher", IN_GC01_1)).status_code == 403


async def test_listing_clock_ins_by_scope_and_filter(api: Api, clock: FrozenClock) -> None:
    mine = (await clock_in(api, "worker", IN_GC01_1)).json()["id"]
    clock.advance(timedelta(hours=1))
    theirs = (await clock_in(api, "worker2", IN_DL01_1)).json()["id"]

    async def ids(user: str, query: str = "") -> list[int]:
        response = await api.get(f"/api/v1/clock-ins?{query}", user)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["items"]]

    assert await ids("worker") == [mine]
    assert await ids("supervisor") == [theirs, mine]
    assert await ids("dl_dispatcher") == [theirs]
    assert await ids("admin", "grid=GC01-1") == [mine]
    assert await ids("admin", "org_unit=DL") == [theirs]
    assert await ids("admin", "worker=worker2") == [theirs]
    assert await ids("admin", "from=2026-11-23T02:30:00%2B00:00") == [theirs]
    assert await ids("admin", "to=2026-11-23T02:30:00%2B00:00") == [mine]
    assert (await api.get("/api/v1/clock-ins", "handler")).status_code == 403


async def test_patrol_coverage_over_a_day(api: Api, clock: FrozenClock) -> None:
    clock.advance(-timedelta(days=1))
    await clock_in(api, "worker2", IN_DL01_1)  # yesterday: another day
    clock.advance(timedelta(days=1))
    await clock_in(api, "worker", IN_GC01_1)
    await clock_in(api, "worker", IN_GC01_1)  # GC01-1 patrolled twice
    await clock_in(api, "worker", IN_GC02_1)  # not the worker's own grid: does not count
    await clock_in(api, "worker2", IN_DL01_1)

    district = (
        await api.get("/api/v1/stats/patrol?org_unit=NH&date=2026-11-23", "supervisor")
    ).json()
    town = (
        await api.get("/api/v1/stats/patrol?org_unit=GC&date=2026-11-23", "town_dispatcher")
    ).json()

    assert district["totals"] == {"grids": 8, "patrolled": 2, "clock_ins": 3, "coverage_rate": 0.25}
    by_grid = {item["grid_code"]: item for item in district["items"]}
    assert by_grid["GC01-1"] == {
        "grid_code": "GC01-1",
        "clock_ins": 2,
        "workers": 1,
        "patrolled": True,
        "track_minutes": 0.0,
    }
    assert by_grid["GC02-1"]["patrolled"] is False
    assert by_grid["DL01-1"]["clock_ins"] == 1
    assert town["totals"] == {"grids": 4, "patrolled": 1, "clock_ins": 2, "coverage_rate": 0.25}


async def test_patrol_statistics_are_scoped(api: Api) -> None:
    query = "/api/v1/stats/patrol?org_unit=DL&date=2026-11-23"
    assert (await api.get(query, "gc_supervisor")).status_code == 404
    assert (await api.get(query, "handler")).status_code == 403
    assert (await api.get(query, "worker")).status_code == 403
    assert (await api.get(query.replace("2026-11-23", "someday"), "admin")).status_code == 422


OUTER = [[113.30, 23.10], [113.32, 23.10], [113.32, 23.12], [113.30, 23.12], [113.30, 23.10]]
HOLE = [
    [113.305, 23.105],
    [113.315, 23.105],
    [113.315, 23.115],
    [113.305, 23.115],
    [113.305, 23.105],
]


@pytest.mark.parametrize(
    ("point", "grid"),
    [
        ((23.11, 113.302), "GC01-9"),  # inside
        ((23.11, 113.30), "GC01-9"),  # on the edge
        ((23.11, 113.30 - 30 / 102_400), "GC01-9"),  # 30 m west: GPS drift, snaps
        ((23.11, 113.31), None),  # in the hole, 500 m from any edge
        ((23.11, 113.30 - 500 / 102_400), None),  # 500 m west
    ],
)
async def test_points_and_a_grid_with_a_hole(
    api: Api, point: tuple[float, float], grid: str | None
) -> None:
    created = await api.post(
        "/api/v1/org-units",
        "admin",
        {
            "code": "GC01-9",
            "name": "带湖网格",
            "level": "grid",
            "parent_code": "GC01",
            "boundary": {"type": "MultiPolygon", "coordinates": [[OUTER, HOLE]]},
        },
    )
    assert created.status_code == 201, created.text

    response = await api.post("/api/v1/events", "worker", event_body(at=point))

    if grid is None:
        assert response.status_code == 422
    else:
        assert response.status_code == 201, response.text
        assert response.json()["grid_code"] == grid


async def test_a_report_near_an_open_one_of_its_category_is_flagged(
    api: Api, clock: FrozenClock
) -> None:
    first = await api.report(at=(23.0350, 113.1050))
    closed = await api.ticket_in("closed")  # at IN_GC01_1, but no longer open
    other_category = await api.report(at=(23.0352, 113.1050), category_code="manhole")
    clock.advance(timedelta(hours=1))

    near = await api.report(at=(23.0350 + 60 / 111_195, 113.1050))  # 60 m north
    far = await api.report(at=(23.0350 + 300 / 111_195, 113.1050))  # 300 m north

    assert [(d["id"], d["number"]) for d in near["possible_duplicates"]] == [
        (first["id"], first["number"])
    ]
    assert 55 < near["possible_duplicates"][0]["distance_m"] < 65
    assert far["possible_duplicates"] == []
    assert closed["id"] not in [d["id"] for d in near["possible_duplicates"]]
    assert other_category["id"] not in [d["id"] for d in near["possible_duplicates"]]
    shown = (await api.get(f"/api/v1/tickets/{near['id']}", "dispatcher")).json()
    assert shown["possible_duplicates"] == near["possible_duplicates"]
    listed = (await api.get("/api/v1/tickets", "dispatcher")).json()["items"]
    assert [t for t in listed if t["id"] == near["id"]] == [shown]

    clock.advance(timedelta(hours=73))  # older than 72 hours: no longer likely duplicates
    assert (await api.report(at=(23.0350, 113.1050)))["possible_duplicates"] == []


async def test_merged_reporter_follows_the_original(api: Api) -> None:
    original = await api.report(as_="worker2", at=IN_DL01_1)
    duplicate = await api.report(at=(IN_DL01_1[0] + 0.0003, IN_DL01_1[1]))
    assert (await api.get(f"/api/v1/tickets/{original['id']}", "worker")).status_code == 404

    await api.must(
        duplicate["id"],
        "merge",
        "district_dispatcher",
        {"duplicate_of": original["id"], "note": "同一处垃圾"},
    )

    followed = await api.get(f"/api/v1/tickets/{original['id']}", "worker")
    assert followed.status_code == 200
    assert followed.json()["reporter"] == "worker2"


async def test_nearby_lists_open_tickets_in_scope(api: Api) -> None:
    centre = await api.report()
    close = await api.report(at=(IN_GC01_1[0] + 0.001, IN_GC01_1[1]), category_code="manhole")
    also = await api.report(at=(IN_GC01_1[0] - 0.002, IN_GC01_1[1]))
    await api.report(at=(IN_GC01_1[0], IN_GC01_1[1] + 0.009))  # 900 m away

    nearby = (await api.get(f"/api/v1/tickets/{centre['id']}/nearby", "dispatcher")).json()
    same = (
        await api.get(f"/api/v1/tickets/{centre['id']}/nearby?same_category=true", "dispatcher")
    ).json()

    assert [t["id"] for t in nearby["items"]] == [close["id"], also["id"]]
    assert [t["id"] for t in same["items"]] == [also["id"]]
    assert (
        await api.get(f"/api/v1/tickets/{centre['id']}/nearby?radius_m=0", "dispatcher")
    ).status_code == 422
    assert (
        await api.get(f"/api/v1/tickets/{centre['id']}/nearby", "dl_dispatcher")
    ).status_code == 404


async def test_a_merged_reporter_may_not_act_on_the_original(api: Api) -> None:
    original = await api.ticket_in("feedback")  # reported by worker
    duplicate = await api.report(as_="worker2", at=(IN_GC01_1[0], IN_GC01_1[1] + 0.0003))
    body = {"duplicate_of": original["id"], "note": "同一处垃圾"}
    await api.must(duplicate["id"], "merge", "dispatcher", body)

    seen = await api.get(f"/api/v1/tickets/{original['id']}", "worker2")
    refused = await api.act(original["id"], "verify", "worker2", {"passed": True})

    assert seen.status_code == 200 and seen.json()["allowed_actions"] == []
    assert refused.status_code == 403


async def test_admins_do_not_clock_in(api: Api) -> None:
    assert (await clock_in(api, "admin", IN_GC01_1)).status_code == 403


async def test_a_point_on_a_shared_edge_counts_for_the_own_grid(
    api: Api, world: Database, clock: FrozenClock
) -> None:
    from app.auth.models import Role
    from tests.helpers import add_user

    async with world.sessions() as session:
        await add_user(session, "gc012_worker", Role.grid_worker, "GC01-2", None, clock.now())
        await session.commit()
    edge = (23.035, 113.11)  # between GC01-1 and GC01-2

    theirs = (await clock_in(api, "gc012_worker", edge)).json()
    mine = (await clock_in(api, "worker", edge)).json()

    assert (theirs["grid_code"], theirs["inside_grid"]) == ("GC01-2", True)
    assert (mine["grid_code"], mine["inside_grid"]) == ("GC01-1", True)
