"""Closure statistics against a small set of tickets whose every figure is worked out by hand."""

from datetime import timedelta
from typing import Any

import pytest

from app.clock import FrozenClock
from app.config import Settings
from tests.helpers import DISPATCH, IN_GC02_1, Api

QUERY = "/api/v1/stats/closure?from=2026-11-23&to=2026-11-24"


@pytest.fixture(params=[True, False], ids=["rollups", "tickets-only"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """Every test twice: reading whole months from the rollups, and counting only tickets
    (GRIDWORK_STATS_ROLLUPS=false)."""
    return settings.model_copy(update={"stats_rollups": request.param})


async def walk(api: Api, tid: int, *steps: tuple[str, str, dict[str, Any] | None]) -> None:
    for action, user, body in steps:
        await api.must(tid, action, user, body)


@pytest.fixture
async def known_tickets(api: Api, clock: FrozenClock) -> None:
    """Seven tickets reported on Monday 23 November at 10:00 (Shanghai):
    t1 closed at 12:00 and rated 5; t2 reworked once, closed at 13:00; t3 rejected;
    t4 merged into t1; t5 solved on the spot; t6 dispatched and left past its deadline;
    t7 (in GC02) escalated after missing its deadline, closed at 15:00 and rated 3."""
    t1, t2, t3, t4, t6 = [(await api.report())["id"] for _ in range(5)]
    await api.report(resolved_on_site=True)
    t7 = (await api.report(at=IN_GC02_1))["id"]
    await api.must(t3, "reject", "dispatcher", {"note": "不属于受理范围"})
    await api.must(t4, "merge", "dispatcher", {"duplicate_of": t1, "note": "重复上报"})
    for tid in (t1, t2, t6):
        await api.must(tid, *DISPATCH)
    await api.must(t7, "dispatch", "gc02_dispatcher", {"department_code": "NH-CG"})

    done = ("feedback", "handler", {"note": "已处置"})
    passed = ("verify", "worker", {"passed": True})
    clock.advance(timedelta(hours=2))
    await walk(api, t1, ("claim", "handler", None), done, passed, ("rate", "worker", {"score": 5}))
    clock.advance(timedelta(hours=1))
    await walk(
        api,
        t2,
        ("claim", "handler", None),
        done,
        ("verify", "worker", {"passed": False}),
        done,
        passed,
    )
    clock.advance(timedelta(hours=1, minutes=1))
    await api.must(t7, "escalate", "gc02_dispatcher", {"note": "超时未处置"})
    clock.advance(timedelta(minutes=59))
    await walk(api, t7, ("claim", "handler", None), done, passed, ("rate", "worker", {"score": 3}))


EXPECTED_GC = {
    "reported": 7,
    "accepted": 5,
    "closed": 4,
    "closed_on_time": 3,
    "closure_rate": 0.8,
    "on_time_closure_rate": 0.6,
    "self_resolved": 1,
    "open": 1,
    "overdue_open": 1,
    "escalated": 1,
    "reworked": 1,
    "rework_rate": 0.2,
    "reopened": 0,
    "reopen_rate": 0.0,
    "resolved_in_community": 3,
    "in_community_rate": 0.75,
    "rated": 2,
    "satisfied": 1,
    "satisfaction_rate": 0.5,
    "avg_handling_hours": 2.5,
}


@pytest.mark.parametrize(
    "days",
    [
        "from=2026-11-23&to=2026-11-24",  # one day: day rows (tickets only without rollups)
        "from=2026-11-01&to=2026-12-01",  # a whole month: month rows
        "from=2026-10-15&to=2026-12-15",  # days, a month, days
        "from=2026-11-20&to=2027-01-01",  # days before a month
    ],
)
async def test_every_figure(api: Api, known_tickets: None, days: str) -> None:
    query = f"/api/v1/stats/closure?{days}&org_unit=NH"
    district = (await api.get(query, "supervisor")).json()

    assert district["totals"] == {"key": None, **EXPECTED_GC}
    assert district["items"] == [{"key": "GC", **EXPECTED_GC}]
    by_month = (await api.get(f"{query}&group_by=month", "supervisor")).json()
    assert by_month["items"] == [{"key": "2026-11", **EXPECTED_GC}]


async def test_grouped_by_community(api: Api, known_tickets: None) -> None:
    town = (await api.get(f"{QUERY}&org_unit=GC&group_by=org_unit", "town_dispatcher")).json()

    by_key = {item["key"]: item for item in town["items"]}
    assert list(by_key) == ["GC01", "GC02"]
    assert {
        k: by_key["GC01"][k]
        for k in (
            "reported",
            "accepted",
            "closed",
            "closed_on_time",
            "escalated",
            "resolved_in_community",
        )
    } == {
        "reported": 6,
        "accepted": 4,
        "closed": 3,
        "closed_on_time": 3,
        "escalated": 0,
        "resolved_in_community": 3,
    }
    assert by_key["GC01"]["avg_handling_hours"] == pytest.approx(5 / 3)
    gc02 = by_key["GC02"]
    assert (gc02["closed"], gc02["closed_on_time"], gc02["in_community_rate"]) == (1, 0, 0.0)
    assert (gc02["rated"], gc02["satisfaction_rate"], gc02["avg_handling_hours"]) == (1, 0.0, 5.0)


@pytest.mark.parametrize(
    ("group_by", "key"),
    [
        ("category", "garbage"),
        ("day", "2026-11-23"),
        ("week", "2026-W48"),
        ("month", "2026-11"),
    ],
)
async def test_other_groupings(api: Api, known_tickets: None, group_by: str, key: str) -> None:
    stats = (await api.get(f"{QUERY}&org_unit=NH&group_by={group_by}", "admin")).json()
    assert [(i["key"], i["reported"], i["closed"]) for i in stats["items"]] == [(key, 7, 4)]
    assert stats["totals"]["avg_handling_hours"] == 2.5


async def test_departments_and_empty_ranges(api: Api, known_tickets: None) -> None:
    stats = (await api.get(f"{QUERY}&org_unit=NH&group_by=department", "admin")).json()
    assert [(i["key"], i["reported"]) for i in stats["items"]] == [("NH-CG", 4), (None, 3)]
    empty = (
        await api.get("/api/v1/stats/closure?from=2026-11-24&to=2026-11-25&org_unit=NH", "admin")
    ).json()
    assert empty["items"] == [] and empty["totals"]["closure_rate"] is None


async def test_scope_and_bad_input(api: Api) -> None:
    assert (await api.get(f"{QUERY}&org_unit=DL", "gc_supervisor")).status_code == 404
    assert (await api.get(f"{QUERY}&org_unit=NH", "worker")).status_code == 403
    assert (await api.get(f"{QUERY}&org_unit=NH", "handler")).status_code == 403
    for bad in (
        "from=2026-11-24&to=2026-11-23&org_unit=NH",
        "from=2026-11-23&org_unit=NH",
        f"{QUERY[QUERY.index('?') + 1 :]}&org_unit=NH&group_by=year",
    ):
        assert (await api.get(f"/api/v1/stats/closure?{bad}", "admin")).status_code == 422


async def test_ranking_of_communities(api: Api, known_tickets: None) -> None:
    table = (
        await api.get(
            "/api/v1/stats/ranking?from=2026-11-23&to=2026-11-24&org_unit=GC", "town_dispatcher"
        )
    ).json()

    assert [(r["rank"], r["key"]) for r in table["items"]] == [(1, "GC01"), (2, "GC02")]
    assert [r["name"] for r in table["items"]] == ["东二社区", "夏北社区"]
    assert table["items"][0]["score"] == pytest.approx(0.75)
    assert table["items"][1]["score"] == pytest.approx(0.6)
    assert table["weights"] == {"closure_rate": 0.4, "on_time_closure_rate": 0.4, "no_rework": 0.2}


async def test_ranking_of_departments_names_them(api: Api, known_tickets: None) -> None:
    query = "/api/v1/stats/ranking?from=2026-11-23&to=2026-11-24&org_unit=NH&by=department"
    table = (await api.get(query, "supervisor")).json()

    named = {r["key"]: r["name"] for r in table["items"]}
    assert named == {"NH-CG": "南海区城市管理和综合执法局", None: None}


def test_ranking_ties_and_units_without_tickets() -> None:
    from app.stats.schemas import ClosureStats
    from app.stats.service import Counts, rank

    def row(key: str, accepted: int, closed: int) -> Any:
        return Counts(
            reported=accepted, accepted=accepted, closed=closed, closed_on_time=closed
        ).row(key)

    stats = ClosureStats(
        items=[row("A", 2, 1), row("B", 4, 2), row("C", 0, 0), row("D", 1, 1)],
        totals=Counts().row(None),
    )
    ranked = rank(stats, (1.0, 1.0, 0.0))
    assert [(r.key, r.rank) for r in ranked.items] == [("D", 1), ("A", 2), ("B", 2), ("C", None)]


async def test_exports_in_csv_and_xlsx_with_chinese_headers(api: Api, known_tickets: None) -> None:
    import csv
    import io

    from openpyxl import load_workbook

    as_csv = await api.client.get(
        f"{QUERY}&org_unit=NH&lang=zh",
        headers={"Accept": "text/csv", **await api.headers("supervisor")},
    )
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["分组", "上报数", "应结案数", "结案数"]
    assert rows[1][:4] == ["GC", "7", "5", "4"]
    assert rows[-1][:2] == ["合计", "7"]

    as_xlsx = await api.get(
        "/api/v1/stats/ranking?from=2026-11-23&to=2026-11-24&org_unit=GC&format=xlsx",
        "town_dispatcher",
    )
    assert as_xlsx.headers["content-disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    assert sheet is not None
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0][:4] == ["rank", "key", "name", "score"]
    assert values[1][:3] == [1, "GC01", "东二社区"]
