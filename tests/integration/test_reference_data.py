from typing import Any

import pytest

from app.db import Database
from app.orgs.models import OrgUnit
from tests.helpers import Api, count


def square(lon: float, lat: float, size: float = 0.01) -> dict[str, Any]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


async def test_add_a_grid_and_report_in_it(api: Api) -> None:
    grid = {
        "code": "GC01-3",
        "name": "东二社区第3网格",
        "level": "grid",
        "parent_code": "GC01",
        "boundary": square(113.10, 23.05),
    }

    created = await api.post("/api/v1/org-units", "admin", grid)

    assert created.status_code == 201, created.text
    assert created.json()["boundary"] == grid["boundary"]
    fetched = await api.get("/api/v1/org-units/GC01-3", "worker")
    assert fetched.status_code == 200 and fetched.json()["parent_code"] == "GC01"
    ticket = await api.report(at=(23.055, 113.105))
    assert ticket["grid_code"] == "GC01-3" and ticket["owner_unit_code"] == "GC01"
    listed = await api.get("/api/v1/tickets?org_unit=GC01-3", "supervisor")
    assert [t["id"] for t in listed.json()["items"]] == [ticket["id"]]


BOWTIE = {
    "type": "Polygon",
    "coordinates": [
        [[113.1, 23.1], [113.11, 23.11], [113.11, 23.1], [113.1, 23.11], [113.1, 23.1]]
    ],
}
OPEN_RING = {
    "type": "Polygon",
    "coordinates": [[[113.1, 23.1], [113.11, 23.1], [113.11, 23.11], [113.1, 23.11]]],
}

BAD_UNITS = {
    "grid without boundary": ({"level": "grid", "parent_code": "GC01"}, "boundary"),
    "self-intersecting": ({"level": "grid", "parent_code": "GC01", "boundary": BOWTIE}, "boundary"),
    "open ring": ({"level": "grid", "parent_code": "GC01", "boundary": OPEN_RING}, "boundary"),
    "not a polygon": (
        {
            "level": "grid",
            "parent_code": "GC01",
            "boundary": {"type": "Point", "coordinates": [113.1, 23.1]},
        },
        "boundary",
    ),
    "out of WGS84 range": (
        {"level": "grid", "parent_code": "GC01", "boundary": square(181.0, 23.0)},
        "boundary",
    ),
    "grid under a town": (
        {"level": "grid", "parent_code": "GC", "boundary": square(113.2, 23.2)},
        "parent_code",
    ),
    "community under a district": ({"level": "community", "parent_code": "NH"}, "parent_code"),
    "town without parent": ({"level": "town"}, "parent_code"),
    "district with parent": ({"level": "district", "parent_code": "NH"}, "parent_code"),
    "unknown parent": ({"level": "town", "parent_code": "ZZ"}, "parent_code"),
    "unknown level": ({"level": "village", "parent_code": "GC"}, "level"),
}


@pytest.mark.parametrize("case", list(BAD_UNITS))
async def test_bad_org_unit_is_422(api: Api, world: Database, case: str) -> None:
    fields, field = BAD_UNITS[case]
    before = await count(world, OrgUnit)

    response = await api.post("/api/v1/org-units", "admin", {"code": "X1", "name": "x", **fields})

    assert response.status_code == 422, response.text
    assert ["body", field] in [e["loc"][:2] for e in response.json()["errors"]]
    assert await count(world, OrgUnit) == before


async def test_codes_are_unique(api: Api) -> None:
    unit = await api.post(
        "/api/v1/org-units",
        "admin",
        {"code": "GC", "name": "again", "level": "town", "parent_code": "NH"},
    )
    department = await api.post(
        "/api/v1/departments", "admin", {"code": "NH-CG", "name": "again", "org_unit_code": "NH"}
    )
    category = await api.post(
        "/api/v1/categories",
        "admin",
        {"code": "garbage", "name": "again", "time_limit": {"value": 1, "unit": "hours"}},
    )
    assert unit.status_code == department.status_code == category.status_code == 409


async def test_reference_data_is_written_by_admins_only(api: Api) -> None:
    body = {"code": "GC09", "name": "x", "level": "community", "parent_code": "GC"}
    assert (await api.post("/api/v1/org-units", "district_dispatcher", body)).status_code == 403
    assert (
        await api.post(
            "/api/v1/departments", "supervisor", {"code": "D", "name": "x", "org_unit_code": "NH"}
        )
    ).status_code == 403


async def test_categories_with_limits(api: Api) -> None:
    body = {
        "code": "noise",
        "name": "噪音扰民",
        "time_limit": {"value": 1, "unit": "working_days"},
        "urgent_time_limit": {"value": 2, "unit": "hours"},
        "default_department_code": "GC-ZZ",
        "public": True,
    }

    created = await api.post("/api/v1/categories", "admin", body)

    assert created.status_code == 201, created.text
    assert {k: created.json()[k] for k in body} == body
    assert (await api.get("/api/v1/categories/noise", "worker")).json()["public"] is True
    bad = await api.post(
        "/api/v1/categories", "admin", {**body, "code": "n2", "default_department_code": "NOPE"}
    )
    assert bad.status_code == 422


async def test_lists_page_through_everything(api: Api) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.get(f"/api/v1/org-units?{query}", "worker")).json()
        seen += [u["code"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == 15  # 1 district, 2 towns, 4 communities, 8 grids
    towns = (await api.get("/api/v1/org-units?level=town", "worker")).json()["items"]
    assert [t["code"] for t in towns] == ["DL", "GC"]
    subtree = (await api.get("/api/v1/org-units?within=GC01", "worker")).json()["items"]
    assert [u["code"] for u in subtree] == ["GC01", "GC01-1", "GC01-2"]
    departments = (await api.get("/api/v1/departments?org_unit_code=NH", "worker")).json()
    assert len(departments["items"]) == 3
