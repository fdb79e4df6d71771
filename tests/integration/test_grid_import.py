import json
import sys
from pathlib import Path
from typing import Any

from app.db import Database
from app.orgs.models import OrgUnit
from tests.helpers import Api, count, event_body

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from generate_grids import district, feature, square


def collection(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


async def post(api: Api, body: Any) -> Any:
    return await api.post("/api/v1/org-units/import", "admin", body)


async def test_a_generated_district_imports_and_reports_locate_in_it(
    api: Api, world: Database
) -> None:
    generated = district("GD", towns=2, communities=3, grids=4)  # 24 grids

    response = await post(api, generated)

    assert response.status_code == 200, response.text
    assert response.json() == {"created": 1 + 2 + 6 + 24, "updated": 0}
    ticket = await api.report(at=(22.95 + 0.002, 112.95 + 0.006))  # the second grid
    assert (ticket["grid_code"], ticket["owner_unit_code"]) == ("GD010102", "GD0101")


async def test_import_updates_names_and_boundaries(api: Api) -> None:
    assert (await post(api, district("GD", 1, 1, 1))).status_code == 200
    moved = square(112.90, 22.90, 0.004)
    again = district("GD", 1, 1, 1)
    again["features"][-1]["geometry"] = moved
    again["features"][-1]["properties"]["name"] = "新名字"

    response = await post(api, again)

    assert response.json() == {"created": 0, "updated": 4}
    grid = (await api.get("/api/v1/org-units/GD010101", "worker")).json()
    assert (grid["name"], grid["boundary"]) == ("新名字", moved)


async def test_one_bad_feature_changes_nothing_and_is_named(api: Api, world: Database) -> None:
    good = district("GD", 1, 1, 3)
    bowtie = {
        "type": "Polygon",
        "coordinates": [
            [[113.0, 23.0], [113.01, 23.01], [113.01, 23.0], [113.0, 23.01], [113.0, 23.0]]
        ],
    }
    good["features"][3]["geometry"] = bowtie  # the first grid
    good["features"].append(feature("GD0199", "orphan", "grid", "NOPE", square(113, 23, 0.01)))
    good["features"].append(feature("GD01", "twice", "town", "GD"))
    before = await count(world, OrgUnit)

    response = await post(api, good)

    assert response.status_code == 422
    errors = {(e["loc"][1], e["loc"][2]): e["msg"] for e in response.json()["errors"]}
    assert "Self-intersection" in errors[(3, "geometry")]
    assert "parent" in errors[(6, "properties.parent_code")]
    assert "also feature 1" in errors[(7, "properties.code")]
    assert await count(world, OrgUnit) == before


async def test_moving_an_existing_unit_is_refused(api: Api) -> None:
    response = await post(api, collection(feature("GC01", "东二社区", "community", "DL")))
    assert response.status_code == 422
    assert "moving units is not supported" in response.json()["errors"][0]["msg"]


async def test_not_a_feature_collection(api: Api) -> None:
    for body in (
        {"type": "Feature"},
        {"type": "FeatureCollection", "features": []},
        collection({"type": "Point"}),
    ):
        assert (await post(api, body)).status_code == 422
    assert (
        await api.post("/api/v1/org-units/import", "dispatcher", collection())
    ).status_code == 403


def test_the_sample_file_is_a_district_worth() -> None:
    levels = [f["properties"]["level"] for f in district("NH", 7, 12, 10)["features"]]
    assert levels.count("grid") >= 800
    json.dumps(district("NH", 1, 1, 1), ensure_ascii=False)


async def test_lookups_follow_a_boundary_moved_by_import(api: Api) -> None:
    assert (await post(api, district("GD", 1, 1, 1))).status_code == 200
    assert (await api.report(at=(22.952, 112.952)))["grid_code"] == "GD010101"
    moved = district("GD", 1, 1, 1)
    moved["features"][-1]["geometry"] = square(112.80, 22.80, 0.004)

    assert (await post(api, moved)).status_code == 200

    assert (await api.report(at=(22.802, 112.802)))["grid_code"] == "GD010101"
    gone = await api.post("/api/v1/events", "worker", event_body(at=(22.952, 112.952)))
    assert gone.status_code == 422


async def test_unreadable_features_are_422(api: Api) -> None:
    mixed = [[113.0, 23.0], [113.01, 23.0, 5.0], [113.01, 23.01], [113.0, 23.0]]
    for bad in (
        feature("GD", "x", "district", None) | {"properties": ["code", "GD"]},
        feature("GD01", "x", "grid", "GC01", {"type": "Polygon", "coordinates": [mixed]}),
        feature(
            "GD01",
            "x",
            "grid",
            "GC01",
            {
                "type": "Polygon",
                "coordinates": [
                    [[10**400, 23.0], [113.01, 23.0], [113.01, 23.01], [10**400, 23.0]]
                ],
            },
        ),
    ):
        response = await post(api, collection(bad))
        assert response.status_code == 422, response.text
