"""Ticket-list and ticket-detail latency on a large PostgreSQL database.

Creates a fresh database, fills it with a district of 10 towns, 100 communities and 800 grids
and N tickets (default 1,000,000) spread over a year, then times list queries through the app
(in process, httpx ASGI transport) and prints median and p95 milliseconds per query.

    .venv/bin/python bench/ticket_reads.py [--tickets 1000000] [--repeat 30]
"""

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from app.auth.security import hash_password_sync
from app.cli import alembic_config
from app.config import Settings
from app.db import Database
from app.main import create_app

ADMIN_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
PASSWORD = "bench-password"

FILL_SQL = """
INSERT INTO org_units (code, name, level, parent_code, path, created_at)
VALUES ('NH', '南海区', 'district', NULL, '/NH/', now());
INSERT INTO org_units (code, name, level, parent_code, path, created_at)
SELECT 'T' || t, 'town ' || t, 'town', 'NH', '/NH/T' || t || '/', now()
FROM generate_series(0, 9) t;
INSERT INTO org_units (code, name, level, parent_code, path, created_at)
SELECT 'C' || c, 'community ' || c, 'community', 'T' || (c / 10),
       '/NH/T' || (c / 10) || '/C' || c || '/', now()
FROM generate_series(0, 99) c;
INSERT INTO org_units (code, name, level, parent_code, path, boundary,
                       min_lat, max_lat, min_lon, max_lon, created_at)
SELECT 'G' || g, 'grid ' || g, 'grid', 'C' || (g / 8),
       '/NH/T' || (g / 80) || '/C' || (g / 8) || '/G' || g || '/',
       json_build_object('type', 'Polygon', 'coordinates', json_build_array(json_build_array(
           json_build_array(113.0 + (g % 40) * 0.01, 23.0 + (g / 40) * 0.01),
           json_build_array(113.01 + (g % 40) * 0.01, 23.0 + (g / 40) * 0.01),
           json_build_array(113.01 + (g % 40) * 0.01, 23.01 + (g / 40) * 0.01),
           json_build_array(113.0 + (g % 40) * 0.01, 23.01 + (g / 40) * 0.01),
           json_build_array(113.0 + (g % 40) * 0.01, 23.0 + (g / 40) * 0.01)))),
       23.0 + (g / 40) * 0.01, 23.01 + (g / 40) * 0.01,
       113.0 + (g % 40) * 0.01, 113.01 + (g % 40) * 0.01, now()
FROM generate_series(0, 799) g;
INSERT INTO departments (code, name, org_unit_code, created_at)
SELECT 'D' || d, 'department ' || d, 'NH', now() FROM generate_series(0, 19) d;
INSERT INTO categories (code, name, time_limit_value, time_limit_unit, public, created_at)
SELECT 'K' || k, 'category ' || k, 4, 'hours', false, now() FROM generate_series(0, 29) k;
"""

TICKETS_SQL = """
INSERT INTO tickets (client_id, source, status, level, owner_unit_code, grid_code,
    community_code, town_code, district_code, category_code, department_code, reporter, description, lat, lon, urgent, self_resolved,
    reported_at, dispatched_at, deadline_started_at, warning_at, deadline_at, overdue,
    escalation_count, rework_count, extension_count, version)
SELECT gen_random_uuid(), 'patrol', s.status, 'community', 'C' || (s.g / 8), 'G' || s.g,
    'C' || (s.g / 8), 'T' || (s.g / 80), 'NH',
    'K' || (s.i % 30),
    CASE WHEN s.status = 'reported' THEN NULL ELSE 'D' || (s.i % 20) END,
    'w' || s.g, 'generated ticket ' || s.i, 23.005, 113.005, false, false,
    s.at, s.at, s.at, s.at + interval '192 minutes', s.at + interval '4 hours',
    false, 0, 0, 0, 1
FROM (
    SELECT i, (i * 7919) % 800 AS g,
           (ARRAY['rated','rated','closed','closed','closed','closed','feedback','in_progress',
                  'dispatched','reported'])[1 + i % 10] AS status,
           timestamptz '2025-11-22 00:00+00' + (i * 31536000 / $1) * interval '1 second' AS at
    FROM generate_series(1::bigint, $1::bigint) i
) s
"""


async def build(url: str, tickets: int) -> None:
    parsed = make_url(url)
    conn = await asyncpg.connect(host=parsed.host, port=parsed.port or 5432,
                                 user=parsed.username, database=parsed.database)
    try:
        await conn.execute(FILL_SQL)
        await conn.executemany(
            "INSERT INTO users (username, password_hash, display_name, role, org_unit_code,"
            " department_code, is_active, token_generation, failed_logins, created_at)"
            " VALUES ($1, $2, $1, $3, $4, $5, true, 0, 0, now())",
            [("district", hash_password_sync(PASSWORD), "dispatcher", "NH", None),
             ("town", hash_password_sync(PASSWORD), "dispatcher", "T3", None),
             ("community", hash_password_sync(PASSWORD), "dispatcher", "C42", None),
             ("handler", hash_password_sync(PASSWORD), "handler", "NH", "D7")]
            + [(f"w{g}", "x", "grid_worker", f"G{g}", None) for g in range(800)],
        )
        started = time.perf_counter()
        await conn.execute(TICKETS_SQL, tickets)
        await conn.execute("ANALYZE")
        print(f"inserted {tickets:,} tickets in {time.perf_counter() - started:.1f} s")
    finally:
        await conn.close()


QUERIES = [
    ("district dispatcher, first page", "district", "/api/v1/tickets"),
    ("town dispatcher, first page", "town", "/api/v1/tickets"),
    ("community dispatcher, first page", "community", "/api/v1/tickets"),
    ("handler, first page", "handler", "/api/v1/tickets"),
    ("district, status=reported", "district", "/api/v1/tickets?status=reported"),
    ("district, warning=red", "district", "/api/v1/tickets?warning=red"),
    ("district, category=K3 & org_unit=T5", "district", "/api/v1/tickets?category=K3&org_unit=T5"),
    ("district, reported in one week", "district",
     "/api/v1/tickets?reported_from=2026-03-01&reported_to=2026-03-08"),
    ("community, limit=500", "community", "/api/v1/tickets?limit=500"),
    ("ticket detail", "district", "/api/v1/tickets/{id}"),
]


async def measure(url: str, repeat: int) -> None:
    database = Database(url)
    settings = Settings(database_url=url, secret_key="bench-secret-" + "x" * 32)
    app = create_app(settings, database=database)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://bench") as client:
        headers = {}
        for user in ("district", "town", "community", "handler"):
            token = await client.post("/api/v1/auth/token",
                                      data={"username": user, "password": PASSWORD})
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

    name = f"gridwork_bench_{uuid.uuid4().hex[:8]}"
    admin = make_url(args.admin_url)
    conn = await asyncpg.connect(host=admin.host, port=admin.port or 5432, user=admin.username,
                                 database=admin.database)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        from alembic import command

        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
        await build(url, args.tickets)
        print(f"measured at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        await measure(url, args.repeat)
    finally:
        if args.keep:
            print(f"kept database {name}")
            return
        conn = await asyncpg.connect(host=admin.host, port=admin.port or 5432,
                                     user=admin.username, database=admin.database)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
