"""Grid boundaries: GeoJSON validation and point-to-grid lookup.

Lookups run in memory against an STRtree of every grid, built once per version of the
reference data (`app/reference.py`). A point outside every grid but within the GPS-drift
tolerance of one snaps to the nearest.
"""

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

EARTH_RADIUS_M = 6_371_008.8
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180


class BoundaryError(ValueError):
    """A boundary that is not a valid WGS84 GeoJSON Polygon or MultiPolygon."""


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


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
    try:
        geometry = shape(geojson)
    except (ValueError, TypeError) as exc:  # e.g. rings mixing 2-D and 3-D positions
        raise BoundaryError(f"boundary cannot be read: {exc}") from exc
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
    code: str
    path: str  # materialised path: /district/town/community/grid/
    distance_m: float  # 0 when the point is inside (or on the edge of) the grid


class GridMap:
    """Every grid's boundary in an STRtree: a point lookup is a tree query in memory."""

    def __init__(self, grids: list[tuple[str, str, dict[str, Any]]]) -> None:
        self.codes = [code for code, _, _ in grids]
        self.paths = [path for _, path, _ in grids]
        self.shapes = [shape(boundary) for _, _, boundary in grids]
        self.tree = shapely.STRtree(self.shapes)

    def locate(
        self, lat: float, lon: float, drift_m: float, prefer: str | None = None
    ) -> GridMatch | None:
        """The grid covering the point (`prefer` on a shared edge, else the first by code),
        else the nearest within `drift_m` metres, else None."""
        point = shapely.Point(lon, lat)
        inside = self.tree.query(point, predicate="covered_by")
        if len(inside):
            best = min(inside, key=lambda i: (self.codes[i] != prefer, self.codes[i]))
            return GridMatch(self.codes[best], self.paths[best], 0.0)
        # A search radius in degrees of longitude, the shorter ones, covers drift_m everywhere
        # (capped: near the poles it would take in the whole map).
        radius = min(drift_m / (METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 1e-6)), 1.0)
        origin = shapely.Point(0.0, 0.0)
        found: GridMatch | None = None
        for i in self.tree.query(point, predicate="dwithin", distance=radius):
            distance = float(_to_local_metres(self.shapes[i], lat, lon).distance(origin))
            if distance <= drift_m and (found is None or distance < found.distance_m):
                found = GridMatch(self.codes[i], self.paths[i], distance)
        return found
