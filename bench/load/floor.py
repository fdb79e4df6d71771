"""The floor of a patrol report: how fast the least a report must do can go on this machine.

Not Gridwork. Bare FastAPI with the service's own token check and request model (`EventIn`),
and raw asyncpg: the user's row, then the report's writes as one statement. It skips what
Gridwork adds on top (grid lookup, duplicate hints, category check, rendering the ticket,
logs, metrics) and its rollup upsert is a simplified one, so Gridwork cannot beat it. Stages:
1. the token check and the user's row only;
2. and the ticket inserted (a 1M-ticket table with its indexes and foreign keys);
3. and its history row and two rollup rows, in the same statement.

Then the floor of a list page: the token check and the user's row, and the district's newest
page of tickets (`DEFAULT_LIMIT` of them, every column) read by one statement and sent as JSON
by orjson, with no scope, rendering or validation; driven by the load benchmark's first list
scenario.

    .venv/bin/python -m bench.load.floor --database gridwork_bench_xxxxxxxx

serves each stage with 2 workers on a database `bench.load.run --keep` left, drives it with
the load benchmark's report script, and prints requests/s and the ratio to the reference insert
measured in the same run. `bench.load.run` removes the tickets it adds before its next run.
"""

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
import orjson
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.engine import make_url

from app.auth.security import read_access_token
from app.pagination import DEFAULT_LIMIT
from app.tickets.models import TICKET_COLUMNS
from app.tickets.schemas import EventIn
from bench.district import ADMIN_URL
from bench.load.run import (
    SECRET,
    VENV_BIN,
    Server,
    figure,
    grid_workers,
    reference_figures,
    token,
    wrk,
)

FLOOR_PORT = 8712
USER = "SELECT is_active, token_generation FROM users WHERE username = $1"
FILE = """
INSERT INTO tickets (client_id, source, status, level, owner_unit_code, grid_code,
    community_code, town_code, district_code, category_code, reporter, description, lat, lon,
    urgent, self_resolved, reported_at, time_limit_value, time_limit_unit, deadline_started_at,
    warning_at, deadline_at, overdue, escalation_count, rework_count, extension_count, version,
    alarm_stage, alarm_at, updated_at)
VALUES ($1, 'patrol', 'reported', 'community', 'C1', 'G1', 'C1', 'T0', 'NH', $2, $3, $4, $5, $6,
    false, false, $7, 60, 'minutes', $7, $7, $7, false, 0, 0, 0, 1, 'warning', $7, $7)
ON CONFLICT (reporter, client_id) DO NOTHING RETURNING id, version
"""
FILE_WITH_HISTORY_AND_ROLLUPS = f"""
WITH filed AS ({FILE}),
history AS (
    INSERT INTO ticket_history (ticket_id, at, actor, action, to_status, to_level)
    SELECT id, $7, $3, 'report', 'reported', 'community' FROM filed
),
rollups AS (
    INSERT INTO closure_rollups
    SELECT 'C1', grain, period, $2, '-', 'T0', 'NH', 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0
    FROM filed, (VALUES
        ('m', to_char($7 AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')),
        ('d', to_char($7 AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD'))) AS k (grain, period)
    ORDER BY 1, 2
    ON CONFLICT (community_code, grain, period, category_code, department_code)
    DO UPDATE SET reported = closure_rollups.reported + 1, open = closure_rollups.open + 1
)
SELECT id, version FROM filed
"""
NEWEST_PAGE = f"""
SELECT {", ".join(column.name for column in TICKET_COLUMNS)} FROM tickets
WHERE district_code = $1 ORDER BY reported_at DESC, id DESC LIMIT {DEFAULT_LIMIT + 1}
"""
STAGE = int(os.environ.get("BENCH_STAGE", "3"))
oauth2 = OAuth2PasswordBearer(tokenUrl="/token", auto_error=False)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        host="127.0.0.1", user="postgres", database=os.environ["BENCH_DATABASE"], max_size=10
    )
    yield
    await app.state.pool.close()


app = FastAPI(lifespan=lifespan)


async def reporter(request: Request, token: Annotated[str | None, Depends(oauth2)]) -> str:
    claims = read_access_token(SECRET, token or "", datetime.now(UTC))
    if claims is None:
        raise HTTPException(401)
    async with request.app.state.pool.acquire() as connection:
        user = await connection.fetchrow(USER, claims.username)
    if user is None or not user["is_active"] or user["token_generation"] != claims.generation:
        raise HTTPException(401)
    return claims.username


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/api/v1/events", status_code=201)
async def report(
    data: EventIn, request: Request, username: Annotated[str, Depends(reporter)]
) -> Response:
    filed = {}
    if STAGE >= 2:
        statement = FILE_WITH_HISTORY_AND_ROLLUPS if STAGE >= 3 else FILE
        async with request.app.state.pool.acquire() as connection:
            row = await connection.fetchrow(
                statement,
                data.client_id,
                data.category_code,
                username,
                data.description,
                data.lat,
                data.lon,
                datetime.now(UTC),
            )
        filed = dict(row) if row else {}
    body = orjson.dumps({"client_id": data.client_id, **filed})
    return Response(body, status_code=201, media_type="application/json")


@app.get("/api/v1/tickets")
async def newest_page(request: Request, _: Annotated[str, Depends(reporter)]) -> Response:
    async with request.app.state.pool.acquire() as connection:
        rows = await connection.fetch(NEWEST_PAGE, "NH")
    more = len(rows) > DEFAULT_LIMIT
    items = [dict(row) for row in rows[:DEFAULT_LIMIT]]
    cursor = f"{items[-1]['reported_at'].isoformat()}/{items[-1]['id']}" if more else None
    page = orjson.dumps({"items": items, "next_cursor": cursor}, default=str)  # asyncpg's UUID
    return Response(page, media_type="application/json")


def serve(stage: str, args: argparse.Namespace) -> Server:
    return Server(
        [
            str(VENV_BIN / "uvicorn"),
            "bench.load.floor:app",
            *("--port", str(FLOOR_PORT), "--workers", str(args.workers)),
            *("--log-level", "warning"),
        ],
        FLOOR_PORT,
        "/ping",
        {"BENCH_DATABASE": args.database, "BENCH_STAGE": stage},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="a database bench.load.run kept")
    parser.add_argument("--duration", type=int, default=10, help="seconds per stage")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    args.connections, args.threads = 50, 2
    url = make_url(ADMIN_URL).set(database=args.database).render_as_string()
    reference = reference_figures(args.workers, url, args)[0]
    workers_file = grid_workers(200)
    floors = []
    for stage in (1, 2, 3):
        server = serve(str(stage), args)
        try:
            raw = wrk("report.lua", FLOOR_PORT, args, BENCH_WORKERS=workers_file)
        finally:
            server.stop()
        floors.append(figure(f"floor, stage {stage}", args.workers, raw))
    server = serve("1", args)
    try:
        env = {"BENCH_TOKEN": token("district"), "BENCH_PATHS": "/api/v1/tickets"}
        wrk("read.lua", FLOOR_PORT, args, **env)  # warm the workers and the plan
        floors.append(
            figure("floor, list page", args.workers, wrk("read.lua", FLOOR_PORT, args, **env))
        )
    finally:
        server.stop()
    for floor in floors:
        ratio = floor.requests_per_s / reference.requests_per_s
        print(f"{floor.scenario}: {ratio:.2f}× the reference insert")


if __name__ == "__main__":
    main()
