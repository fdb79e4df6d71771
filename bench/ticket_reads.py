"""Ticket-list and ticket-detail latency on a large PostgreSQL database.

Fills a scratch database with a district (800 grids) and N tickets (default 1,000,000) spread
over a year, then times list queries through the app (in process, httpx ASGI transport) and
prints median and p95 milliseconds per query.

    .venv/bin/python -m bench.ticket_reads [--tickets 1000000] [--repeat 30] [--keep]
"""

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime

import httpx

from app.config import Settings
from app.db import Database
from app.main import create_app
from bench.district import ADMIN_URL, PASSWORD, fill_district, scratch_database

QUERIES = [
    ("district dispatcher, first page", "district", "/api/v1/tickets"),
    ("town dispatcher, first page", "town", "/api/v1/tickets"),
    ("community dispatcher, first page", "community", "/api/v1/tickets"),
    ("handler, first page", "handler", "/api/v1/tickets"),
    ("district, status=reported", "district", "/api/v1/tickets?status=reported"),
    ("district, warning=red", "district", "/api/v1/tickets?warning=red"),
    ("district, category=K3 & org_unit=T5", "district", "/api/v1/tickets?category=K3&org_unit=T5"),
    (
        "district, reported in one week",
        "district",
        "/api/v1/tickets?reported_from=2026-03-01&reported_to=2026-03-08",
    ),
    ("community, limit=500", "community", "/api/v1/tickets?limit=500"),
    ("grid worker, awaiting=me", "w42", "/api/v1/tickets?awaiting=me"),
    ("handler, awaiting=me", "handler", "/api/v1/tickets?awaiting=me"),
    ("community dispatcher, awaiting=me", "community", "/api/v1/tickets?awaiting=me"),
    ("district dispatcher, awaiting=me", "district", "/api/v1/tickets?awaiting=me"),
    ("district, urged=true", "district", "/api/v1/tickets?urged=true"),
    ("town, urged=true", "town", "/api/v1/tickets?urged=true"),
    ("grid worker, nearby-tickets (100 m)", "w42", "/api/v1/nearby-tickets?lat=23.015&lon=113.025"),
    (
        "grid worker, nearby-tickets (500 m)",
        "w42",
        "/api/v1/nearby-tickets?lat=23.015&lon=113.025&radius_m=500",
    ),
    ("ticket detail", "district", "/api/v1/tickets/{id}"),
]


async def measure(url: str, repeat: int) -> None:
    database = Database(url)
    settings = Settings(database_url=url, secret_key="bench-secret-" + "x" * 32)
    app = create_app(settings, database=database)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://bench"
    ) as client:
        headers = {}
        for user in ("district", "town", "community", "handler", "w42"):
            token = await client.post(
                "/api/v1/auth/token", data={"username": user, "password": PASSWORD}
            )
            headers[user] = {"Authorization": f"Bearer {token.json()['access_token']}"}
        first = (await client.get("/api/v1/tickets?limit=1", headers=headers["district"])).json()
        ticket_id = first["items"][0]["id"] // 2
        print(f"{'query':45} {'median ms':>10} {'p95 ms':>8} {'items':>6}")
        for name, user, path in QUERIES:
            path = path.format(id=ticket_id)
            timings, items = [], 0
            for _ in range(repeat):
                started = time.perf_counter()
                response = await client.get(path, headers=headers[user])
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text
                items = len(response.json().get("items", [1]))
            timings.sort()
            p95 = timings[min(len(timings) - 1, int(len(timings) * 0.95))]
            print(f"{name:45} {statistics.median(timings):10.1f} {p95:8.1f} {items:6}")
        # Walking deep into the list costs the same per page (keyset, not OFFSET).
        cursor, started = None, time.perf_counter()
        for _ in range(100):
            query = "/api/v1/tickets?limit=100" + (f"&cursor={cursor}" if cursor else "")
            cursor = (await client.get(query, headers=headers["community"])).json()["next_cursor"]
        per_page = (time.perf_counter() - started) * 10
        print(f"{'community, 100 consecutive pages of 100':45} {per_page:10.1f} per page")
    await database.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    async with scratch_database(args.admin_url, args.keep) as url:
        await fill_district(url, args.tickets)
        print(f"measured at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        await measure(url, args.repeat)


if __name__ == "__main__":
    asyncio.run(main())
