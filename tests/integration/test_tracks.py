"""Patrol tracks and the tickets around a point (API.md, "Field work")."""

from datetime import timedelta
from typing import Any

import pytest

from app.clock import FrozenClock
from app.db import Database
from app.patrol.models import TrackPoint
from tests.conftest import START
from tests.helpers import IN_DL01_1, Api, count

TRACKS = "/api/v1/patrol/tracks"
DAY = "date=2026-11-23"


def point(
    minutes_before: float, lon: float = 113.105, lat: float = 23.035, **extra: Any
) -> dict[str, Any]:
    """A point in grid GC01-1 (the demo worker's) `minutes_before` START; east of 113.11 is
    GC01-2."""
    at = START - timedelta(minutes=minutes_before)
    return {"at": at.isoformat(), "lat": lat, "lon": lon, **extra}


async def send(api: Api, points: list[dict[str, Any]], as_: str = "worker") -> Any:
    return await api.post(TRACKS, as_, {"points": points})


async def test_a_day_of_track_in_time_order_with_its_length_and_minutes_in_grid(
    api: Api,
) -> None:
    walk = [point(30 - i, lon=round(113.105 + 0.001 * i, 6), accuracy_m=8) for i in range(5)]
    outside = [point(20, lon=113.115), point(19, lon=113.116)]  # GC01-2: not the worker's grid
    after_a_break = [point(5, lon=113.101), point(4, lon=113.102)]  # 14 min gap, then 1 minute
    shuffled = [*after_a_break, *reversed(walk), *outside]

    response = await send(api, shuffled)

    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 9, "ignored": 0}
    track = (await api.get(f"{TRACKS}?worker=worker&{DAY}", "worker")).json()
    assert track["type"] == "Feature"
    coordinates = track["geometry"]["coordinates"]
    assert coordinates[0] == [113.105, 23.035] and coordinates[-1] == [113.102, 23.035]
    assert [c[0] for c in coordinates[:5]] == [113.105, 113.106, 113.107, 113.108, 113.109]
    properties = track["properties"]
    assert (properties["worker"], properties["date"], properties["points"]) == (
        "worker",
        "2026-11-23",
        9,
    )
    # 4 minutes walking, 1 minute after the break; the walk out of the grid and the gaps
    # around it do not count
    assert properties["minutes_in_grid"] == 5.0
    # 0.027 degrees of longitude walked east and back, at about 102.3 km a degree
    assert properties["distance_m"] == pytest.approx(2763, rel=0.002)


async def test_resends_are_ignored_within_and_across_batches(api: Api, world: Database) -> None:
    first = [point(10), point(9)]
    assert (await send(api, [*first, point(10)])).json() == {"stored": 2, "ignored": 1}

    again = await send(api, [point(9), point(8)])

    assert again.json() == {"stored": 1, "ignored": 1}
    assert await count(world, TrackPoint) == 3


@pytest.mark.parametrize(
    ("points", "why"),
    [
        ([], "at least 1"),
        ([point(1)] * 1001, "at most 1000"),
        ([point(1), point(-6)], "in the future"),
        ([point(7 * 24 * 60 + 1), point(1)], "7 days"),
        ([point(1, lat=91)], "less than or equal to 90"),
        ([{**point(1), "speed": 3}], "Extra inputs"),
    ],
)
async def test_a_batch_with_a_bad_point_is_refused_whole(
    api: Api, world: Database, points: list[dict[str, Any]], why: str
) -> None:
    response = await send(api, points)

    assert response.status_code == 422
    assert why in response.text
    assert await count(world, TrackPoint) == 0


async def test_tracks_are_read_in_scope(api: Api) -> None:
    await send(api, [point(3), point(2)])
    query = f"{TRACKS}?worker=worker&{DAY}"

    for reader in ("worker", "dispatcher", "town_dispatcher", "supervisor", "admin"):
        assert (await api.get(query, reader)).status_code == 200, reader
    for outsider in ("worker2", "dl_dispatcher", "dl_supervisor"):
        assert (await api.get(query, outsider)).status_code == 404, outsider
    assert (await api.get(query, "handler")).status_code == 403
    assert (await api.post(TRACKS, "dispatcher", {"points": [point(1)]})).status_code == 403
    assert (await api.get(f"{TRACKS}?worker=dispatcher&{DAY}", "admin")).status_code == 404
    empty = (await api.get(f"{TRACKS}?worker=worker&date=2026-11-22", "worker")).json()
    assert empty["geometry"] is None and empty["properties"]["points"] == 0
    one = (await api.get(query.replace("worker=worker", "worker=worker2"), "admin")).json()
    assert one["geometry"] is None


async def test_track_minutes_join_the_patrol_statistics(api: Api, clock: FrozenClock) -> None:
    await send(api, [point(10 - i) for i in range(4)])  # 3 minutes in GC01-1
    lat, lon = IN_DL01_1
    await send(api, [point(3, lat=lat, lon=lon), point(1, lat=lat, lon=lon)], "worker2")
    clock.advance(timedelta(days=1))
    await send(api, [point(-24 * 60 + 2), point(-24 * 60 + 1)])  # the next day

    stats = (await api.get("/api/v1/stats/patrol?org_unit=NH&date=2026-11-23", "admin")).json()

    minutes = {item["grid_code"]: item["track_minutes"] for item in stats["items"]}
    assert (minutes["GC01-1"], minutes["DL01-1"], minutes["GC02-1"]) == (3.0, 2.0, 0.0)


# The tickets around a point ---------------------------------------------------------------------

AROUND = "/api/v1/nearby-tickets"


async def test_tickets_around_a_point_nearest_first_open_or_lately_closed(
    api: Api, clock: FrozenClock
) -> None:
    clock.advance(-timedelta(days=9))
    closed_long_ago = (await api.ticket_in("closed", at=(23.035, 113.1051)))["id"]
    clock.advance(timedelta(days=9))
    far = (await api.report(at=(23.035, 113.1065)))["id"]  # about 150 m east
    closed = (await api.ticket_in("rated", at=(23.035, 113.1052)))["id"]
    near = (await api.report(at=(23.0351, 113.105), category_code="manhole"))["id"]
    (await api.ticket_in("rejected", at=(23.035, 113.105)))["id"]

    around = (await api.get(f"{AROUND}?lat=23.035&lon=113.105", "worker2")).json()

    assert [t["id"] for t in around["items"]] == [near, closed]
    assert around["next_cursor"] is None
    first = around["items"][0]
    assert set(first) == {
        "id",
        "number",
        "category_code",
        "status",
        "distance_m",
        "reported_at",
        "description",
    }
    assert first["distance_m"] == pytest.approx(11.1, abs=0.2)
    wider = await api.get(f"{AROUND}?lat=23.035&lon=113.105&radius_m=500", "handler")
    assert [t["id"] for t in wider.json()["items"]] == [near, closed, far]
    garbage = await api.get(
        f"{AROUND}?lat=23.035&lon=113.105&radius_m=500&category=garbage", "supervisor"
    )
    assert [t["id"] for t in garbage.json()["items"]] == [closed, far]
    assert closed_long_ago not in [t["id"] for t in wider.json()["items"]]


async def test_at_most_twenty_tickets_around(api: Api) -> None:
    for i in range(22):
        await api.report(at=(23.035, 113.105 + 0.00001 * i))
    around = (await api.get(f"{AROUND}?lat=23.035&lon=113.105", "worker")).json()
    assert len(around["items"]) == 20


@pytest.mark.parametrize(
    "query", ["lat=23&lon=113&radius_m=0", "lat=23&lon=113&radius_m=501", "lat=91&lon=113", "lon=1"]
)
async def test_bad_queries_around_a_point(api: Api, query: str) -> None:
    response = await api.get(f"{AROUND}?{query}", "worker")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
