"""Grid boundaries: GeoJSON validation and point-to-grid lookup.

Candidates are prefiltered in SQL by bounding box, then tested exactly with shapely. A point
outside every grid but within the GPS-drift tolerance of one snaps to the nearest.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.orgs.models import Level, OrgUnit

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180


class BoundaryError(ValueError):
    """A boundary that is not a valid WGS84 GeoJSON Polygon or MultiPolygon."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_ring(ring: Any, where: str) -> None:
    if not isinstance(ring, list) or len(ring) < 4:
        raise BoundaryError(f"{where}: a ring needs at least 4 positions")
    for position in ring:
        if (
            not isinstance(position, list | tuple)
            or len(position) not in (2, 3)
            or not all(_is_number(c) for c in position)
        ):
            raise BoundaryError(
                f"{where}: a position must be [lon, lat] or [lon, lat, alt] numbers"
            )
        lon, lat = position[0], position[1]
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise BoundaryError(f"{where}: position {lon}, {lat} is outside WGS84 ranges")
    if list(ring[0][:2]) != list(ring[-1][:2]):
        raise BoundaryError(f"{where}: the ring is not closed (first position != last)")


def parse_boundary(geojson: dict[str, Any]) -> tuple[dict[str, Any], BaseGeometry]:
    """Validates a GeoJSON Polygon or MultiPolygon; returns it with nothing but its type and
    coordinates, and as a shapely geometry."""
    kind = geojson.get("type")
    coordinates: Any = geojson.get("coordinates")
    polygons: Any
    if kind == "Polygon":
        polygons = [coordinates]
    elif kind == "MultiPolygon":
        polygons = coordinates if isinstance(coordinates, list) else None
    else:
        raise BoundaryError("boundary must be a GeoJSON Polygon or MultiPolygon")
    if not polygons or not all(isinstance(p, list) and p for p in polygons):
        raise BoundaryError("boundary has no coordinates")
    for i, polygon in enumerate(polygons):
        for j, ring in enumerate(polygon):
            _check_ring(ring, f"polygon {i} ring {j}")
    geometry = shape(geojson)
    if not geometry.is_valid:
        raise BoundaryError(f"boundary is not a valid polygon: {shapely.is_valid_reason(geometry)}")
    if geometry.area == 0:
        raise BoundaryError("boundary has no area")
    return {"type": kind, "coordinates": coordinates}, geometry


def _to_local_metres(geometry: BaseGeometry, lat0: float, lon0: float) -> BaseGeometry:
    """Equirectangular projection centred on (lat0, lon0): accurate to well under a metre at
    the distances of GPS drift."""
    scale = np.array([METRES_PER_DEGREE * math.cos(math.radians(lat0)), METRES_PER_DEGREE])
    origin = np.array([lon0, lat0])
    return shapely.transform(geometry, lambda xy: (xy - origin) * scale)


@dataclass(frozen=True)
class GridMatch:
    grid: OrgUnit
    distance_m: float  # 0 when the point is inside (or on the edge of) the grid


async def locate_grid(
    session: AsyncSession, lat: float, lon: float, drift_m: float
) -> GridMatch | None:
    """The grid containing the point, else the nearest within `drift_m` metres, else None."""
    dlat = drift_m / METRES_PER_DEGREE
    dlon = drift_m / (METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 1e-6))
    candidates = (
        await session.scalars(
            select(OrgUnit)
            .where(
                OrgUnit.level == Level.grid,
                OrgUnit.min_lat <= lat + dlat,
                OrgUnit.max_lat >= lat - dlat,
                OrgUnit.min_lon <= lon + dlon,
                OrgUnit.max_lon >= lon - dlon,
            )
            .order_by(OrgUnit.code)
        )
    ).all()
    best: GridMatch | None = None
    point = shapely.Point(0.0, 0.0)
    for grid in candidates:
        assert grid.boundary is not None
        local = _to_local_metres(shape(grid.boundary), lat, lon)
        distance = 0.0 if local.covers(point) else float(local.distance(point))
        if distance <= drift_m and (best is None or distance < best.distance_m):
            best = GridMatch(grid, distance)
            if distance == 0.0:
                break
    return best
