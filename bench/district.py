"""A scratch PostgreSQL database with a district of 10 towns, 100 communities and 800 grids,
for the benchmarks in this folder."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from alembic import command
from sqlalchemy.engine import URL, make_url

from app.auth.security import hash_password_sync
from app.cli import alembic_config

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
INSERT INTO org_units (code, name, level, parent_code, path, boundary, created_at)
SELECT 'G' || g, 'grid ' || g, 'grid', 'C' || (g / 8),
       '/NH/T' || (g / 80) || '/C' || (g / 8) || '/G' || g || '/',
       json_build_object('type', 'Polygon', 'coordinates', json_build_array(json_build_array(
           json_build_array(113.0 + (g % 40) * 0.01, 23.0 + (g / 40) * 0.01),
           json_build_array(113.01 + (g % 40) * 0.01, 23.0 + (g / 40) * 0.01),
           json_build_array(113.01 + (g % 40) * 0.01, 23.01 + (g / 40) * 0.01),
           json_build_array(113.0 + (g % 40) * 0.01, 23.01 + (g / 40) * 0.01),
           json_build_array(113.0 + (g % 40) * 0.01, 23.0 + (g / 40) * 0.01)))),
       now()
FROM generate_series(0, 799) g;
INSERT INTO departments (code, name, org_unit_code, created_at)
SELECT 'D' || d, 'department ' || d, 'NH', now() FROM generate_series(0, 19) d;
INSERT INTO categories (code, name, time_limit_value, time_limit_unit, public, created_at)
SELECT 'K' || k, 'category ' || k, 4, 'hours', false, now() FROM generate_series(0, 29) k;
"""

# Tickets spread over the year before 2026-11-22, each at a point of its grid. Those of the
# last two weeks are a mix (1 in 10 waits for dispatch, 3 in 10 are being handled, the rest
# closed or rated); older ones are closed or rated. Deadlines are 4 hours; no alarms are set.
# One in 97 has been urged.
TICKETS_SQL = """
INSERT INTO tickets (client_id, source, status, level, owner_unit_code, grid_code,
    community_code, town_code, district_code, category_code, department_code, reporter,
    description, lat, lon, urgent, self_resolved, reported_at, dispatched_at, feedback_at,
    closed_at, rating, time_limit_value, time_limit_unit, deadline_started_at, warning_at,
    deadline_at, overdue,
    escalation_count, rework_count, extension_count, urge_count, updated_at, version)
SELECT gen_random_uuid(), 'patrol', s.status, 'community', 'C' || (s.g / 8), 'G' || s.g,
    'C' || (s.g / 8), 'T' || (s.g / 80), 'NH',
    'K' || (s.i % 30),
    CASE WHEN s.status = 'reported' THEN NULL ELSE 'D' || (s.i % 20) END,
    'w' || s.g, 'generated ticket ' || s.i,
    23.0 + (s.g / 40) * 0.01 + (s.i * 37 % 100) * 0.0001,
    113.0 + (s.g % 40) * 0.01 + (s.i * 53 % 100) * 0.0001, false, false,
    s.at, s.at,
    CASE WHEN s.status IN ('feedback', 'closed', 'rated')
        THEN s.at + interval '3 hours' END,
    CASE WHEN s.status IN ('closed', 'rated') THEN s.at + interval '200 minutes' END,
    CASE WHEN s.status = 'rated' THEN 3 + s.i % 3 END,
    4, 'hours', s.at, s.at + interval '192 minutes', s.at + interval '4 hours',
    false, 0, 0, 0,
    CASE WHEN s.i % 97 = 0 THEN 1 ELSE 0 END,
    s.at + CASE WHEN s.status IN ('closed', 'rated') THEN interval '200 minutes'
                WHEN s.status = 'feedback' THEN interval '3 hours' ELSE interval '0' END,
    1
FROM (
    SELECT i, g, at,
           CASE WHEN at < timestamptz '2026-11-08 00:00+00'
                THEN (ARRAY['rated', 'rated', 'closed', 'closed', 'closed'])[1 + i % 5]
                ELSE (ARRAY['rated', 'rated', 'closed', 'closed', 'closed', 'closed', 'feedback',
                            'in_progress', 'dispatched', 'reported'])[1 + i % 10]
           END AS status
    FROM (
        SELECT i, (i * 7919) % 800 AS g,
               timestamptz '2025-11-22 00:00+00' + (i * 31536000 / $1) * interval '1 second' AS at
        FROM generate_series(1::bigint, $1::bigint) i
    ) base
) s
"""


async def connect(url: str | URL) -> asyncpg.Connection:
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        database=parsed.database,
    )


@asynccontextmanager
async def scratch_database(admin_url: str, keep: bool = False) -> AsyncIterator[str]:
    """A fresh database migrated to the newest schema; dropped afterwards unless `keep`."""
    name = f"gridwork_bench_{uuid.uuid4().hex[:8]}"
    admin = await connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
        yield url
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            admin = await connect(admin_url)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


async def fill_district(url: str, tickets: int) -> None:
    """The district, one dispatcher per level, a handler, a worker per grid (`w42` may sign
    in), and `tickets`."""
    conn = await connect(url)
    try:
        await conn.execute(FILL_SQL)
        await conn.executemany(
            "INSERT INTO users (username, password_hash, display_name, role, org_unit_code,"
            " department_code, is_active, token_generation, failed_logins, created_at)"
            " VALUES ($1, $2, $1, $3, $4, $5, true, 0, 0, now())",
            [
                ("district", hash_password_sync(PASSWORD), "dispatcher", "NH", None),
                ("town", hash_password_sync(PASSWORD), "dispatcher", "T3", None),
                ("community", hash_password_sync(PASSWORD), "dispatcher", "C42", None),
                ("handler", hash_password_sync(PASSWORD), "handler", "NH", "D7"),
            ]
            + [(f"w{g}", "x", "grid_worker", f"G{g}", None) for g in range(800) if g != 42]
            + [("w42", hash_password_sync(PASSWORD), "grid_worker", "G42", None)],
        )
        started = time.perf_counter()
        await conn.execute(TICKETS_SQL, tickets)
        await conn.execute("ANALYZE")
        print(f"inserted {tickets:,} tickets in {time.perf_counter() - started:.1f} s")
    finally:
        await conn.close()
