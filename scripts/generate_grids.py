"""Writes a GeoJSON FeatureCollection of a district for `gridwork import-grids`: one district,
its towns, their communities and their grids (default 7 towns x 12 communities x 10 grids =
840 grids of about 400 m, around Nanhai, Foshan).

    .venv/bin/python scripts/generate_grids.py [--towns 7] [--communities 12] [--grids 10] \
        [--code NH] > nanhai.geojson
"""

import argparse
import json
import math
import sys
from typing import Any

ORIGIN_LAT, ORIGIN_LON = 22.95, 112.95
GRID_DEG = 0.004  # about 440 m north-south and 410 m east-west


def square(west: float, south: float, size: float) -> dict[str, Any]:
    ring = [
        [west, south],
        [west + size, south],
        [west + size, south + size],
        [west, south + size],
        [west, south],
    ]
    return {"type": "Polygon", "coordinates": [[[round(x, 6), round(y, 6)] for x, y in ring]]}


def feature(
    code: str, name: str, level: str, parent: str | None, geometry: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"code": code, "name": name, "level": level, "parent_code": parent},
        "geometry": geometry,
    }


def district(code: str, towns: int, communities: int, grids: int) -> dict[str, Any]:
    """Grids tile the plane row by row; each community's grids are consecutive."""
    features = [feature(code, "南海区", "district", None)]
    per_row = math.ceil(math.sqrt(towns * communities * grids))
    index = 0
    for t in range(1, towns + 1):
        town = f"{code}{t:02d}"
        features.append(feature(town, f"第{t}镇街", "town", code))
        for c in range(1, communities + 1):
            community = f"{town}{c:02d}"
            features.append(feature(community, f"第{t}镇街第{c}社区", "community", town))
            for g in range(1, grids + 1):
                row, col = divmod(index, per_row)
                west, south = ORIGIN_LON + col * GRID_DEG, ORIGIN_LAT + row * GRID_DEG
                features.append(
                    feature(
                        f"{community}{g:02d}",
                        f"{community}第{g}网格",
                        "grid",
                        community,
                        square(west, south, GRID_DEG),
                    )
                )
                index += 1
    return {"type": "FeatureCollection", "features": features}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--code", default="NH")
    parser.add_argument("--towns", type=int, default=7)
    parser.add_argument("--communities", type=int, default=12)
    parser.add_argument("--grids", type=int, default=10)
    args = parser.parse_args()
    json.dump(
        district(args.code, args.towns, args.communities, args.grids),
        sys.stdout,
        ensure_ascii=False,
    )


if __name__ == "__main__":
    main()
