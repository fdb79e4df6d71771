"""A measured prototype of the tickets partitioned by district, for a province of about 100
districts (docs/scaling.md). On a generated district kept by `bench.closure_stats --keep`, it
copies the tickets into `proto.tickets`, partitioned by LIST (district_code) into 100
partitions (every hundredth ticket stays in the real district, the others are spread over 99
made-up ones), with the same indexes, the district in the primary key and in the resend key.
Then it explains the statements the app sends for the hot requests, as they are and with
`search_path = proto, public` (so that `tickets` is the partitioned one): time, buffers, and
how many partitions each one reads.

    .venv/bin/python -m bench.partitions --database gridwork_bench_xxxxxxxx [--keep]
"""

import argparse
import asyncio
import json
import time
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import Database
from app.main import create_app
from bench.capacity import READS, STAFF
from bench.district import ADMIN_URL, connect
from bench.index_plans import _nodes, statements_of
from bench.load.run import SECRET

PARTITIONS = 100
REAL_DISTRICT = "GD"


def _district(k: int) -> str:
    return REAL_DISTRICT if k == 0 else f"P{k:02d}"


async def build(conn: asyncpg.Connection) -> None:
    await conn.execute("DROP SCHEMA IF EXISTS proto CASCADE; CREATE SCHEMA proto")
    await conn.execute(
        "CREATE TABLE proto.tickets (LIKE public.tickets INCLUDING DEFAULTS)"
        " PARTITION BY LIST (district_code)"
    )
    for k in range(PARTITIONS):
        code = _district(k)
        await conn.execute(
            f"CREATE TABLE proto.tickets_{code.lower()} PARTITION OF proto.tickets"
            f" FOR VALUES IN ('{code}')"
        )
    columns = [
        row["attname"]
        for row in await conn.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = 'public.tickets'::regclass"
            " AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        )
    ]
    moved = ", ".join(
        f"CASE WHEN id % {PARTITIONS} = 0 THEN district_code"
        f" ELSE 'P' || lpad((id % {PARTITIONS})::text, 2, '0') END"
        if c == "district_code"
        else c
        for c in columns
    )
    started = time.perf_counter()
    await conn.execute(f"INSERT INTO proto.tickets SELECT {moved} FROM public.tickets")
    print(f"copied the tickets in {time.perf_counter() - started:.0f} s")
    started = time.perf_counter()
    await conn.execute("ALTER TABLE proto.tickets ADD PRIMARY KEY (district_code, id)")
    for _name, definition in await conn.fetch(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
        " WHERE indrelid = 'public.tickets'::regclass AND NOT indisprimary"
    ):
        definition = definition.replace(" ON public.tickets ", " ON proto.tickets ")
        if "UNIQUE" in definition:  # unique keys of a partitioned table hold its key
            held = "(district_code, reporter, client_id)"
            definition = definition.replace("(reporter, client_id)", held)
        await conn.execute(definition)
    await conn.execute("ANALYZE proto.tickets")
    print(f"built the primary key and indexes in {time.perf_counter() - started:.0f} s")


async def explain(conn: asyncpg.Connection, statement: str, parameters: Any) -> str:
    found = await conn.fetchval(
        f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", *(parameters or ())
    )
    top = json.loads(found)[0]
    plan = top["Plan"]
    tables = {
        n["Relation Name"]
        for n in _nodes(plan)
        if "Relation Name" in n and n["Relation Name"].startswith("tickets")
    }
    buffers = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    return (
        f"{top['Planning Time']:.2f} + {top['Execution Time']:.2f} ms, {buffers:,} buffers,"
        f" {len(tables)} ticket table(s)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--keep", action="store_true", help="keep the proto schema")
    parser.add_argument("--built", action="store_true", help="the proto schema is there")
    args = parser.parse_args()
    url = make_url(ADMIN_URL).set(database=args.database).render_as_string()
    conn = await connect(url)
    if not args.built:
        await build(conn)
    sizes = await conn.fetchval(
        "SELECT pg_total_relation_size(inhrelid) FROM pg_inherits"
        " WHERE inhparent = 'proto.tickets'::regclass"
        " AND inhrelid = 'proto.tickets_gd'::regclass"
    )
    print(f"one district's partition (1/{PARTITIONS} of the tickets): {sizes / 2**20:,.0f} MiB")
    app = create_app(Settings(database_url=url, secret_key=SECRET, env="production"))
    database: Database = app.state.database
    worker = await conn.fetchval("SELECT username FROM users WHERE username LIKE 'gw-%' LIMIT 1")
    assert {u for u, _, _ in STAFF} <= {
        r["username"] for r in await conn.fetch("SELECT username FROM users")
    }, "run bench.capacity first: it adds the district's staff"
    print("\n| request | statement | one table | partitioned by district |\n|---|---|---|---|")
    for name, path, user in READS:
        sent = await statements_of(app, database, path, worker if user == "WORKER" else user)
        for statement, parameters in sent:
            if "tickets" not in statement:
                continue
            as_is = await explain(conn, statement, parameters)
            trial = conn.transaction()
            await trial.start()
            try:
                await conn.execute("SET LOCAL search_path = proto, public")
                partitioned = await explain(conn, statement, parameters)
            finally:
                await trial.rollback()
            short = " ".join(statement.split())[:60]
            print(f"| {name} | `{short}…` | {as_is} | {partitioned} |")
    await database.dispose()
    if not args.keep:
        await conn.execute("DROP SCHEMA proto CASCADE")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
