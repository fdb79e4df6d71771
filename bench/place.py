"""Point-to-grid lookups and clock-in requests with a large grid map.

Loads a district of 10,000 grids (by default) into a scratch database, then prints
- point lookups per second (`grid_map(session).locate`, random points over the map, one after
  another);
- clock-in requests per second through the app in process (httpx ASGI transport, one client
  after another and 20 at once).
PostgreSQL by default; `--sqlite` uses a scratch SQLite file instead.

    .venv/bin/python -m bench.place [--grids-per-community 20] [--lookups 5000] [--sqlite]
"""

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from alembic import command

from app.auth.models import Role
from app.cli import alembic_config
from app.config import Settings
from app.db import Database
from app.main import create_app
from app.orgs.imports import import_org_units
from app.reference import grid_map
from bench.district import ADMIN_URL, scratch_database
from tests.helpers import add_user

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from generate_grids import GRID_DEG, ORIGIN_LAT, ORIGIN_LON, district

PASSWORD = "gridwork-demo"


@asynccontextmanager
async def scratch_sqlite() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory() as workdir:
        url = f"sqlite+aiosqlite:///{workdir}/place.db"
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
        yield url


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--towns", type=int, default=10)
    parser.add_argument("--communities", type=int, default=50)
    parser.add_argument("--grids-per-community", type=int, default=20)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    doc = district("NH", args.towns, args.communities, args.grids_per_community)
    grids = [f for f in doc["features"] if f["properties"]["level"] == "grid"]
    rows = max(f["geometry"]["coordinates"][0][2][1] for f in grids)
    cols = max(f["geometry"]["coordinates"][0][2][0] for f in grids)

    async with scratch_sqlite() if args.sqlite else scratch_database(ADMIN_URL) as url:
        database = Database(url, pool_size=20)
        started = time.perf_counter()
        async with database.sessions() as session:
            await import_org_units(session, doc, datetime.now(UTC))
            await add_user(
                session,
                "worker",
                Role.grid_worker,
                grids[0]["properties"]["code"],
                None,
                datetime.now(UTC),
            )
            await session.commit()
        print(
            f"{'SQLite' if args.sqlite else 'PostgreSQL'}: imported {len(grids):,} grids "
            f"in {time.perf_counter() - started:.1f} s"
        )

        rng = random.Random(7)
        points = [
            (rng.uniform(ORIGIN_LAT, rows), rng.uniform(ORIGIN_LON, cols))
            for _ in range(args.lookups)
        ]
        async with database.sessions() as session:
            started = time.perf_counter()
            found = 0
            for lat, lon in points:
                grids = await grid_map(session)
                found += grids.locate(lat, lon, 50.0) is not None
            elapsed = time.perf_counter() - started
        print(
            f"point lookups: {args.lookups / elapsed:,.0f}/s "
            f"({elapsed / args.lookups * 1e6:.0f} µs each; {found} of {args.lookups} in a grid)"
        )
        async with database.sessions() as session:
            grid_index = await grid_map(session)  # the in-memory part alone
        started = time.perf_counter()
        for lat, lon in points:
            grid_index.locate(lat, lon, 50.0)
        elapsed = time.perf_counter() - started
        print(f"  of which the STRtree alone: {args.lookups / elapsed:,.0f}/s")

        settings = Settings(database_url=url, secret_key="bench-" + "x" * 40)
        app = create_app(settings, database=database)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            token = (
                await client.post(
                    "/api/v1/auth/token", data={"username": "worker", "password": PASSWORD}
                )
            ).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}

            async def one() -> None:
                lat, lon = rng.uniform(ORIGIN_LAT, ORIGIN_LAT + GRID_DEG), ORIGIN_LON + 0.001
                body = {"client_id": str(uuid.uuid4()), "lat": lat, "lon": lon}
                response = await client.post("/api/v1/clock-ins", json=body, headers=headers)
                assert response.status_code == 201, response.text

            for concurrency in (1, 20):
                started = time.perf_counter()
                for _ in range(args.requests // concurrency):
                    await asyncio.gather(*(one() for _ in range(concurrency)))
                elapsed = time.perf_counter() - started
                print(f"clock-ins, {concurrency:2d} at once: {args.requests / elapsed:,.0f}/s")
        await database.dispose()


if __name__ == "__main__":
    asyncio.run(main())
