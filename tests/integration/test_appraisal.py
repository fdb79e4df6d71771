"""Appraisal (考核, API.md v1.1) against a small set of tickets walked through the API, whose
every figure is worked out by hand below."""

import csv
import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook
from pydantic import ValidationError

from app.auth.models import Role
from app.clock import FrozenClock
from app.config import APPRAISAL_WEIGHTS, Settings
from app.db import Database
from app.main import create_app
from tests.helpers import IN_DL01_1, IN_GC01_1, IN_GC02_1, Api, add_user

IN_GC02_2 = (23.035, 113.135)  # grid GC02-2, community GC02: no grid worker of its own
MONDAY = "from=2026-11-23&to=2026-11-24"
WEEK = "from=2026-11-23&to=2026-11-28"
WORKERS = f"/api/v1/stats/appraisal?subject=grid_workers&{MONDAY}"
DEPARTMENTS = f"/api/v1/stats/appraisal?subject=departments&{MONDAY}"
V2 = "/open311/v2"


async def citizen_reports(api: Api, at: tuple[float, float], n: int) -> list[int]:
    """`n` Open311 requests at `at` (tickets with `source` open311 and no reporter)."""
    created = await api.post("/api/v1/open311/clients", "admin", {"name": "市民通"})
    assert created.status_code == 201, created.text
    form = {
        "api_key": created.json()["api_key"],
        "service_code": "garbage",
        "description": "小区门口垃圾没人清理",
        "lat": str(at[0]),
        "long": str(at[1]),
    }
    ids = []
    for _ in range(n):
        response = await api.client.post(f"{V2}/requests.json", data=form)
        assert response.status_code == 201, response.text
        ids.append(int(response.json()[0]["service_request_id"].rsplit("-", 1)[1]))
    return ids


async def clock_in(api: Api, worker: str, at: tuple[float, float]) -> None:
    body = {"client_id": str(uuid.uuid4()), "lat": at[0], "lon": at[1]}
    assert (await api.post("/api/v1/clock-ins", worker, body)).status_code == 201


async def walk(api: Api, tid: int, *steps: tuple[str, str, dict[str, Any] | None]) -> None:
    for action, user, body in steps:
        await api.must(tid, action, user, body)


NOTE = {"note": "说明"}


@pytest.fixture
async def known(api: Api, world: Database, clock: FrozenClock) -> dict[str, int]:
    """Everything reported on Monday 23 November 2026 at 10:00 (Shanghai), acted on until
    Wednesday. Grid workers: `worker` and `worker3` (GC01-1), `worker4` and `idle` (GC02-1),
    `worker2` (DL01-1).

    - worker reports w1 (dispatched to NH-CG), w2 (rejected), w3 (merged into w1), w4 (solved
      on the spot): 4 reports, 2 valid.
    - Citizens file o1..o5 in GC01-1: o3 merged into o1, o4 rejected; o1, o2, o5 sent to be
      checked (check deadline 12:00). worker confirms o1 at 11:00 (on time); o5 is escalated
      at 11:30 (a fresh check deadline, 15:00) and confirmed by worker at 12:30: late, judged
      by the first deadline; worker3 refutes o2 at 12:30 (late). GC01-1's public_first: o1, o5.
    - w1: feedback at 12:30 (verify due Tuesday 13:30: counted from 13:30, after the lunch
      break); worker fails it at 13:00 (on time); feedback again at 14:00 (due Tuesday 14:00);
      worker3 passes it on Wednesday 10:00 (late); worker rates it 3. Never overdue.
    - worker4 reports one ticket in GC02-1, rejected; worker2 one in DL01-1, left reported.
    - Citizens file d1..d3 in GC02-2: d1 dispatched to NH-SZ with NH-XF assisting, returned by
      NH-SZ, dispatched to NH-CG, NH-XF answers, closed, then reopened; d2 dispatched to NH-SZ
      with NH-XF assisting, left past its deadline; d3 closed by NH-SZ at once, rated 5.
    - worker clocks in inside GC01-1 twice on Monday and once on Tuesday, outside it on
      Wednesday; worker3 outside GC01-1 on Tuesday.
    """
    async with world.sessions() as session:
        for username, grid in (("worker3", "GC01-1"), ("worker4", "GC02-1"), ("idle", "GC02-1")):
            await add_user(session, username, Role.grid_worker, grid, None, clock.now())
        await session.commit()

    w1, w2, w3 = [(await api.report())["id"] for _ in range(3)]
    await api.report(resolved_on_site=True)
    o1, o2, o3, o4, o5 = await citizen_reports(api, IN_GC01_1, 5)
    d1, d2, d3 = await citizen_reports(api, IN_GC02_2, 3)
    x4 = (await api.report("worker4", at=IN_GC02_1))["id"]
    await api.report("worker2", at=IN_DL01_1)
    await clock_in(api, "worker", IN_GC01_1)
    await clock_in(api, "worker", IN_GC01_1)

    reject = {"note": "不属于受理范围"}
    await api.must(w2, "reject", "dispatcher", reject)
    await api.must(w3, "merge", "dispatcher", {"duplicate_of": w1, "note": "重复"})
    await api.must(o3, "merge", "dispatcher", {"duplicate_of": o1, "note": "重复"})
    await api.must(o4, "reject", "dispatcher", reject)
    await api.must(x4, "reject", "gc02_dispatcher", reject)
    for tid in (o1, o2, o5):
        await api.must(tid, "request_check", "dispatcher")
    await walk(api, w1, ("dispatch", "dispatcher", {"department_code": "NH-CG"}))
    await api.must(w1, "claim", "handler")

    sz_with_xf = {"department_code": "NH-SZ", "assisting_department_codes": ["NH-XF"]}
    passed = ("verify", "gc02_dispatcher", {"passed": True})
    await walk(
        api,
        d1,
        ("dispatch", "gc02_dispatcher", sz_with_xf),
        ("claim", "handler2", None),
        ("return", "handler2", {"note": "非本部门职责"}),
        ("dispatch", "gc02_dispatcher", {"department_code": "NH-CG"}),
        ("assist", "xf_handler", {"note": "已配合"}),
        ("claim", "handler", None),
        ("feedback", "handler", NOTE),
        passed,
        ("reopen", "gc02_dispatcher", {"note": "市民不满意"}),
    )
    await api.must(d2, "dispatch", "gc02_dispatcher", sz_with_xf)
    await walk(
        api,
        d3,
        ("dispatch", "gc02_dispatcher", {"department_code": "NH-SZ"}),
        ("claim", "handler2", None),
        ("feedback", "handler2", NOTE),
        passed,
        ("rate", "admin", {"score": 5}),
    )

    clock.advance(timedelta(hours=1))  # 11:00
    await api.must(o1, "confirm", "worker")
    clock.advance(timedelta(minutes=30))  # 11:30
    await api.must(o5, "escalate", "dispatcher", {"note": "需街道协调"})
    clock.advance(timedelta(hours=1))  # 12:30
    await api.must(o2, "refute", "worker3", {"note": "现场未发现"})
    await api.must(o5, "confirm", "worker")
    await api.must(w1, "feedback", "handler", NOTE)
    clock.advance(timedelta(minutes=30))  # 13:00
    await api.must(w1, "verify", "worker", {"passed": False})
    clock.advance(timedelta(hours=1))  # 14:00
    await api.must(w1, "feedback", "handler", NOTE)
    clock.advance(timedelta(hours=20))  # Tuesday 10:00
    await clock_in(api, "worker", IN_GC01_1)
    await clock_in(api, "worker3", IN_GC02_1)
    clock.advance(timedelta(days=1))  # Wednesday 10:00
    await clock_in(api, "worker", IN_GC02_1)
    await api.must(w1, "verify", "worker3", {"passed": True})
    await api.must(w1, "rate", "worker", {"score": 3})
    return {"w1": w1, "o2": o2, "o5": o5}


async def appraisal(api: Api, query: str, as_: str = "supervisor") -> dict[str, Any]:
    response = await api.get(query, as_)
    assert response.status_code == 200, response.text
    return dict(response.json())


def by(items: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


WORKER = {
    "rank": 1,
    "username": "worker",
    "display_name": "网格员 李明",
    "grid_code": "GC01-1",
    "reports": 4,
    "valid_reports": 2,
    "valid_rate": 0.5,
    "public_first": 2,
    "missed_rate": 0.5,
    "checks": 2,
    "checks_on_time": 1,
    "on_time_check_rate": 0.5,
    "verifications": 1,
    "verifications_on_time": 1,
    "on_time_verification_rate": 1.0,
    "patrol_days": 1,
    "score": 60.0,
}
WORKER3 = {
    "rank": 3,
    "grid_code": "GC01-1",
    "reports": 0,
    "valid_reports": 0,
    "valid_rate": None,
    "public_first": 2,
    "missed_rate": 1.0,
    "checks": 1,
    "checks_on_time": 0,
    "on_time_check_rate": 0.0,
    "verifications": 1,
    "verifications_on_time": 0,
    "on_time_verification_rate": 0.0,
    "patrol_days": 0,
    "score": 40.0,
}
WORKER4 = {
    "rank": 1,
    "grid_code": "GC02-1",
    "reports": 1,
    "valid_reports": 0,
    "valid_rate": 0.0,
    "public_first": 0,
    "missed_rate": None,
    "checks": 0,
    "on_time_check_rate": None,
    "verifications": 0,
    "on_time_verification_rate": None,
    "score": 60.0,
}


async def test_every_figure_of_the_grid_workers(api: Api, known: dict[str, int]) -> None:
    table = await appraisal(api, f"{WORKERS}&org_unit=GC")

    assert [(i["username"], i["rank"]) for i in table["items"]] == [
        ("worker", 1),
        ("worker4", 1),  # the same score: the same rank
        ("worker3", 3),
        ("idle", None),
    ]
    items = by(table["items"], "username")
    assert {k: items["worker"][k] for k in WORKER} == WORKER
    assert {k: items["worker3"][k] for k in WORKER3} == WORKER3
    assert {k: items["worker4"][k] for k in WORKER4} == WORKER4
    idle = items["idle"]
    assert (idle["score"], idle["rank"], idle["explain"], idle["reports"]) == (None, None, [], 0)
    assert table["weights"] == APPRAISAL_WEIGHTS["grid_workers"]


async def test_each_score_is_explained_term_by_term(api: Api, known: dict[str, int]) -> None:
    items = by((await appraisal(api, f"{WORKERS}&org_unit=GC"))["items"], "username")

    def terms(username: str) -> list[tuple[Any, ...]]:
        explain = items[username]["explain"]
        assert sum(t["points"] for t in explain) == pytest.approx(items[username]["score"])
        return [
            (t["term"], t["rate"], t["part"], t["whole"], t["value"], t["points"]) for t in explain
        ]

    assert terms("worker") == [
        ("valid_rate", 0.5, 2, 4, 0.5, 20.0),
        ("missed_rate", 0.5, 2, 4, 0.5, 10.0),  # enters as 1 - rate
        ("on_time_check_rate", 0.5, 1, 2, 0.5, 10.0),
        ("on_time_verification_rate", 1.0, 1, 1, 1.0, 20.0),
    ]
    assert terms("worker4") == [
        ("valid_rate", 0.0, 0, 1, 0.0, 0.0),
        ("missed_rate", None, 0, 0, 1.0, 20.0),  # no denominator: missed_rate counts as 0
        ("on_time_check_rate", None, 0, 0, 1.0, 20.0),  # no denominator: counts as 1
        ("on_time_verification_rate", None, 0, 0, 1.0, 20.0),
    ]
    assert [t["weight"] for t in items["worker"]["explain"]] == [0.4, 0.2, 0.2, 0.2]


async def test_answers_record_their_deadline_and_verdict(api: Api, known: dict[str, int]) -> None:
    o5 = await api.history(known["o5"])
    (asked,) = [h for h in o5 if h["action"] == "request_check"]
    (confirmed,) = [h for h in o5 if h["action"] == "confirm"]
    assert asked["details"]["deadline_at"] == "2026-11-23T04:00:00+00:00"
    # escalated meanwhile (a fresh deadline at 15:00): judged by the first one, 12:00
    assert confirmed["details"] == {"deadline_at": "2026-11-23T04:00:00+00:00", "on_time": False}

    verifies = [h["details"] for h in await api.history(known["w1"]) if h["action"] == "verify"]
    assert verifies == [
        {"passed": False, "due_at": "2026-11-24T05:30:00+00:00", "on_time": True},
        {"passed": True, "due_at": "2026-11-24T06:00:00+00:00", "on_time": False},
    ]


async def test_a_district_ranks_all_its_workers_and_counts_patrol_days_in_range(
    api: Api, known: dict[str, int]
) -> None:
    monday = await appraisal(api, f"{WORKERS}&org_unit=NH", "admin")
    assert [(i["username"], i["rank"], i["score"]) for i in monday["items"]] == [
        ("worker2", 1, 100.0),  # 1 valid report, nothing else: every other rate at its best
        ("worker", 2, 60.0),
        ("worker4", 2, 60.0),
        ("worker3", 4, 40.0),
        ("idle", None, None),
    ]
    week = f"/api/v1/stats/appraisal?subject=grid_workers&{WEEK}&org_unit=GC01"
    items = by((await appraisal(api, week, "dispatcher"))["items"], "username")
    assert set(items) == {"worker", "worker3"}
    assert (items["worker"]["patrol_days"], items["worker3"]["patrol_days"]) == (2, 0)
    assert items["worker"]["score"] == 60.0  # the same tickets: all reported on Monday


DEPARTMENT_FIGURES = {
    "NH-SZ": {
        "rank": 1,
        "name": "南海区市政设施管理所",
        "handled": 2,
        "closed": 1,
        "closure_rate": 0.5,
        "closed_on_time": 1,
        "on_time_rate": 0.5,
        "reworked": 0,
        "rework_rate": 0.0,
        "reopened": 0,
        "returned": 1,
        "assists": 0,
        "assists_done": 0,
        "rated": 1,
        "satisfied": 1,
        "satisfaction_rate": 1.0,
    },
    "NH-CG": {
        "rank": 2,
        "handled": 2,
        "closed": 1,
        "closure_rate": 0.5,
        "closed_on_time": 1,
        "on_time_rate": 0.5,
        "reworked": 1,
        "rework_rate": 0.5,
        "reopened": 1,
        "returned": 0,
        "assists": 0,
        "rated": 1,
        "satisfied": 0,
        "satisfaction_rate": 0.0,
    },
    "NH-XF": {
        "rank": None,
        "handled": 0,
        "closure_rate": None,
        "returned": 0,
        "assists": 2,
        "assists_done": 1,
        "score": None,
        "explain": [],
    },
    "GC-ZZ": {"rank": None, "handled": 0, "assists": 0, "score": None},
}


async def test_every_figure_of_the_departments(api: Api, known: dict[str, int]) -> None:
    table = await appraisal(api, f"{DEPARTMENTS}&org_unit=GC", "town_dispatcher")

    # the town's own departments and those above it; not DL-ZZ
    assert [i["department_code"] for i in table["items"]] == ["NH-SZ", "NH-CG", "GC-ZZ", "NH-XF"]
    items = by(table["items"], "department_code")
    for code, figures in DEPARTMENT_FIGURES.items():
        assert {k: items[code][k] for k in figures} == figures, code
    # 100 × (0.3 × 0.5 + 0.3 × 0.5 + 0.3 × (1 - 0) + 0.1 × 1) / 1.0
    assert items["NH-SZ"]["score"] == pytest.approx(70.0)
    # 100 × (0.3 × 0.5 + 0.3 × 0.5 + 0.3 × (1 - 0.5) + 0.1 × 0) / 1.0
    assert items["NH-CG"]["score"] == pytest.approx(45.0)
    rework = items["NH-CG"]["explain"][2]
    assert (rework["term"], rework["rate"], rework["value"]) == ("rework_rate", 0.5, 0.5)
    assert table["weights"] == APPRAISAL_WEIGHTS["departments"]

    # only the area's tickets count: GC01 holds none of the departments' tickets but w1
    gc01 = by(
        (await appraisal(api, f"{DEPARTMENTS}&org_unit=GC01", "dispatcher"))["items"],
        "department_code",
    )
    assert (gc01["NH-CG"]["handled"], gc01["NH-SZ"]["handled"]) == (1, 0)
    assert gc01["NH-CG"]["score"] == pytest.approx(100 * (0.3 + 0.3 + 0 + 0) / 1.0)


@asynccontextmanager
async def served(
    world: Database, settings: Settings, clock: FrozenClock, **overrides: Any
) -> AsyncIterator[Api]:
    app = create_app(settings.model_copy(update=overrides), database=world, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridwork.test") as client:
        yield Api(client)


async def test_configured_weights_replace_any_subset(
    known: dict[str, int], world: Database, settings: Settings, clock: FrozenClock
) -> None:
    weights = '{"grid_workers": {"valid_rate": 0}, "departments": {"satisfaction_rate": 0.7}}'
    async with served(world, settings, clock, appraisal_weights=weights) as api:
        workers = await appraisal(api, f"{WORKERS}&org_unit=GC")
        departments = await appraisal(api, f"{DEPARTMENTS}&org_unit=GC")

    assert workers["weights"] == {**APPRAISAL_WEIGHTS["grid_workers"], "valid_rate": 0.0}
    scores = {i["username"]: (i["rank"], i["score"]) for i in workers["items"]}
    assert scores == {
        "worker4": (1, pytest.approx(100.0)),  # (0.2 + 0.2 + 0.2) / 0.6
        "worker": (2, pytest.approx(100 * 0.4 / 0.6)),  # (0.1 + 0.1 + 0.2) / 0.6
        "worker3": (3, 0.0),
        "idle": (None, None),
    }
    assert departments["weights"]["satisfaction_rate"] == 0.7
    items = by(departments["items"], "department_code")
    assert items["NH-SZ"]["score"] == pytest.approx(100 * (0.15 + 0.15 + 0.3 + 0.7) / 1.6)
    assert items["NH-CG"]["score"] == pytest.approx(100 * (0.15 + 0.15 + 0.15) / 1.6)


@pytest.mark.parametrize(
    "weights",
    [
        "not json",
        "[1, 2]",
        '{"teams": {}}',
        '{"grid_workers": {"speed": 1}}',
        '{"grid_workers": {"valid_rate": -1}}',
        '{"grid_workers": {"valid_rate": true}}',
        '{"grid_workers": {"valid_rate": "1"}}',
        '{"grid_workers": [1]}',
        '{"departments": {"closure_rate": 0, "on_time_rate": 0, "rework_rate": 0, '
        '"satisfaction_rate": 0}}',
    ],
)
def test_bad_weights_refuse_to_start(weights: str) -> None:
    with pytest.raises(ValidationError):
        Settings(appraisal_weights=weights)


def test_the_verify_limit_is_a_time_limit() -> None:
    assert Settings().verify_time_limit.model_dump(mode="json") == {
        "value": 1,
        "unit": "working_days",
    }
    assert Settings(verify_limit="4 working_hours").verify_time_limit.value == 4
    with pytest.raises(ValidationError):
        Settings(verify_limit="one day")


async def test_exports_in_csv_and_xlsx(api: Api, known: dict[str, int]) -> None:
    as_csv = await api.get(f"{WORKERS}&org_unit=GC&format=csv&lang=zh", "supervisor")
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "appraisal-grid_workers-GC-2026-11-23.csv" in as_csv.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["排名", "用户名", "姓名", "网格"]
    assert rows[0][-4:] == ["有效上报率得分", "漏报率得分", "按时核实率得分", "按时核查率得分"]
    assert "explain" not in rows[0]
    assert rows[1][:3] == ["1", "worker", "网格员 李明"]
    assert rows[1][-4:] == ["20.0", "10.0", "10.0", "20.0"]
    assert rows[4][0] == ""  # idle: no rank, no score

    as_xlsx = await api.client.get(
        f"{DEPARTMENTS}&org_unit=GC",
        headers={
            "Accept": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            **await api.headers("town_dispatcher"),
        },
    )
    assert as_xlsx.headers["content-disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(as_xlsx.content)).active
    assert sheet is not None
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0][:4] == ["rank", "department_code", "name", "handled"]
    assert values[0][-1] == "points_satisfaction_rate"
    assert values[1][:4] == [1, "NH-SZ", "南海区市政设施管理所", 2]
    assert len(values) == 5


async def test_roles(api: Api) -> None:
    for user in ("worker", "handler"):
        response = await api.get(f"{WORKERS}&org_unit=GC01", user)
        assert response.status_code == 403, user
        assert response.headers["content-type"] == "application/problem+json"
    for user in ("dispatcher", "supervisor", "admin"):
        assert (await api.get(f"{WORKERS}&org_unit=GC01", user)).status_code == 200, user


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("subject=teams&org_unit=GC&" + MONDAY, 422),
        ("org_unit=GC&" + MONDAY, 422),  # no subject
        ("subject=grid_workers&org_unit=GC&from=2026-11-23&to=2026-11-23", 422),
        ("subject=grid_workers&org_unit=GC&from=2026-11-24&to=2026-11-23", 422),
        ("subject=departments&org_unit=GC&from=2023-11-23&to=2026-11-24", 422),  # over 3 years
        ("subject=departments&org_unit=GC&from=2023-11-24&to=2026-11-24", 200),  # 3 years
        ("subject=departments&org_unit=GC&from=2024-02-29&to=2027-03-01", 200),
        ("subject=departments&org_unit=GC&from=2024-02-29&to=2027-03-02", 422),
        ("subject=grid_workers&org_unit=DL&" + MONDAY, 404),  # outside the caller's scope
        ("subject=grid_workers&org_unit=NOPE&" + MONDAY, 404),
        ("subject=grid_workers&org_unit=GC&from=tomorrow&to=2026-11-24", 422),
        ("subject=grid_workers&org_unit=GC&" + MONDAY + "&format=pdf", 422),
    ],
)
async def test_bad_input_is_a_clear_problem(api: Api, query: str, status: int) -> None:
    response = await api.get(f"/api/v1/stats/appraisal?{query}", "gc_supervisor")
    assert response.status_code == status, response.text
    if status != 200:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"]


def test_ties_share_a_rank_and_nulls_come_last() -> None:
    from fractions import Fraction

    from app.stats.appraisal import Term, ranked, score
    from app.stats.schemas import DepartmentAppraisalRow

    def row(code: str) -> DepartmentAppraisalRow:
        zero = dict.fromkeys(
            ["handled", "closed", "closed_on_time", "reworked", "reopened", "returned"], 0
        )
        counts = zero | dict.fromkeys(["assists", "assists_done", "rated", "satisfied"], 0)
        rates = dict.fromkeys(["closure_rate", "on_time_rate", "rework_rate", "satisfaction_rate"])
        return DepartmentAppraisalRow(
            rank=None, department_code=code, name=code, score=None, explain=[], **counts, **rates
        )

    weights = {"a": 0.1, "b": 0.7}
    # 1/3 and 2/6, weighted in another order, are the same score exactly
    one, _ = score([Term("a", 1, 3), Term("b", 2, 6)], weights)
    two, _ = score([Term("b", 1, 3), Term("a", 2, 6)], weights)
    rows = [(None, row("E")), (Fraction(1, 2), row("D")), (one, row("C")), (two, row("B"))]
    rows.append((Fraction(1, 2), row("A")))
    items = ranked(rows, key=lambda r: r.department_code)
    assert one == two == Fraction(100, 3)
    assert [(r.department_code, r.rank) for r in items] == [
        ("B", 1),
        ("C", 1),
        ("A", 3),
        ("D", 3),
        ("E", None),
    ]
