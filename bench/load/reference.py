"""The reference the load benchmark compares Gridwork with: bare FastAPI and raw asyncpg, one
ticket-like row inserted per request, no validation, no ORM, no auth.

    BENCH_DATABASE=dbname uvicorn bench.load.reference:app --workers N
"""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request

CREATE = """
CREATE TABLE IF NOT EXISTS reference_rows (
    id bigserial PRIMARY KEY, client_id uuid NOT NULL, category_code text NOT NULL,
    description text NOT NULL, lat double precision NOT NULL, lon double precision NOT NULL,
    reported_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = """
INSERT INTO reference_rows (client_id, category_code, description, lat, lon)
VALUES ($1, $2, $3, $4, $5) RETURNING id
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    pool = await asyncpg.create_pool(
        host="127.0.0.1", user="postgres", database=os.environ["BENCH_DATABASE"], max_size=10
    )
    async with pool.acquire() as conn, conn.transaction():
        # every worker runs this at once on a new database, and IF NOT EXISTS does not keep two
        # of them from creating the table together
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('reference_rows'))")
        await conn.execute(CREATE)
    app.state.pool = pool
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/insert", status_code=201)
async def insert(request: Request) -> dict[str, int]:
    body = await request.json()
    async with request.app.state.pool.acquire() as conn:
        row_id = await conn.fetchval(
            INSERT,
            uuid.UUID(body["client_id"]),
            body["category_code"],
            body["description"],
            body["lat"],
            body["lon"],
        )
    return {"id": row_id}
