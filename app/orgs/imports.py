"""Loading org units with their boundaries from a GeoJSON FeatureCollection.

Every feature is checked first (its properties, its geometry, its place in the tree, given the
file and the database together); every bad one is reported by index and reason, and nothing is
written unless all are good. Existing units get their new name and boundary; moving a unit to
another parent or level is refused (tickets keep their grid's ancestry).
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import Invalid
from app.orgs.geo import BoundaryError, parse_boundary
from app.orgs.models import Level, OrgUnit
from app.orgs.schemas import OrgUnitIn
from app.orgs.service import create_org_unit

LEVEL_ORDER = {level: depth for depth, level in enumerate(Level)}


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0


def _feature_unit(index: int, feature: Any, problems: list[dict[str, Any]]) -> OrgUnitIn | None:
    loc: list[str | int] = ["features", index]
    if not isinstance(feature, dict) or feature.get("type") != "Feature":
        problems.append({"loc": loc, "msg": "not a GeoJSON Feature"})
        return None
    properties = feature.get("properties") or {}
    if not isinstance(properties, dict):
        problems.append({"loc": [*loc, "properties"], "msg": "properties must be an object"})
        return None
    try:
        unit = OrgUnitIn(
            code=properties.get("code"),
            name=properties.get("name"),
            level=properties.get("level"),
            parent_code=properties.get("parent_code"),
            boundary=feature.get("geometry"),
        )
    except ValidationError as exc:
        for error in exc.errors():
            field = error["loc"][0] if error["loc"] else "properties"
            where = "geometry" if field == "boundary" else f"properties.{field}"
            problems.append({"loc": [*loc, where], "msg": error["msg"]})
        return None
    if unit.boundary is not None:
        try:
            parse_boundary(unit.boundary)
        except BoundaryError as exc:
            problems.append({"loc": [*loc, "geometry"], "msg": str(exc)})
            return None
    elif unit.level == Level.grid:
        problems.append({"loc": [*loc, "geometry"], "msg": "a grid needs a boundary"})
        return None
    return unit


async def import_org_units(session: AsyncSession, collection: Any, now: datetime) -> ImportReport:
    """Creates or updates the org units of a FeatureCollection, all or nothing."""
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise Invalid("expected a GeoJSON FeatureCollection", loc=["body"])
    features = collection.get("features")
    if not isinstance(features, list) or not features:
        raise Invalid("the FeatureCollection has no features", loc=["body", "features"])

    problems: list[dict[str, Any]] = []
    units: dict[str, tuple[int, OrgUnitIn]] = {}
    for index, feature in enumerate(features):
        unit = _feature_unit(index, feature, problems)
        if unit is None:
            continue
        if unit.code in units:
            first = units[unit.code][0]
            problems.append(
                {
                    "loc": ["features", index, "properties.code"],
                    "msg": f"code {unit.code!r} is also feature {first}'s",
                }
            )
            continue
        units[unit.code] = (index, unit)

    stored = {
        u.code: u
        for u in (
            await session.scalars(
                select(OrgUnit).where(
                    OrgUnit.code.in_(
                        set(units) | {u.parent_code for _, u in units.values() if u.parent_code}
                    )
                )
            )
        ).all()
    }
    levels = {code: Level(u.level) for code, u in stored.items()}
    levels.update({code: unit.level for code, (_, unit) in units.items()})
    for code, (index, unit) in units.items():
        loc: list[str | int] = ["features", index, "properties.parent_code"]
        expected = unit.level.parent
        if existing := stored.get(code):
            if (existing.level, existing.parent_code) != (unit.level, unit.parent_code):
                problems.append(
                    {
                        "loc": loc,
                        "msg": f"{code} exists as a {existing.level} under "
                        f"{existing.parent_code}; moving units is not supported",
                    }
                )
        elif expected is None and unit.parent_code is not None:
            problems.append({"loc": loc, "msg": "a district has no parent"})
        elif expected is not None and levels.get(unit.parent_code or "") != expected:
            problems.append(
                {
                    "loc": loc,
                    "msg": f"a {unit.level} needs a parent {expected} in the file or the database",
                }
            )
    if problems:
        problems.sort(key=lambda p: p["loc"][1])
        raise Invalid(
            f"{len(problems)} feature(s) are not valid; nothing was imported", errors=problems
        )

    report = ImportReport()
    for _, unit in sorted(units.values(), key=lambda item: LEVEL_ORDER[item[1].level]):
        if existing := stored.get(unit.code):
            existing.name = unit.name
            if unit.boundary is not None:
                existing.boundary, _ = parse_boundary(unit.boundary)
            report.updated += 1
        else:
            await create_org_unit(session, unit, now)
            report.created += 1
    await session.flush()
    return report
