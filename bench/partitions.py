"""A measured prototype of the tickets partitioned by district, for a province of about 100
districts (docs/scaling.md). On a generated district kept by `bench.closure_stats --keep`, it
spreads a copy of the tickets over 100 districts (every hundredth ticket stays in the real
district, the others go to 99 made-up ones), once as one table (`flat.tickets`) and once
partitioned by LIST (district_code), a partition per district (`proto.tickets`, the district
in the primary key and in the resend key), each with the indexes of `public.tickets`. Then it
explains the statements the app sends for the hot requests on the tickets as generated, and
with `search_path` set to each copy (so that `tickets` is that copy): time, buffers, and how
many ticket tables each reads.

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


async def build(conn: asyncpg.Connection, schema: str, partitioned: bool) -> None:
    """`schema.tickets`: the tickets spread over the province's districts, in one table or in a
    partition per district, with the indexes of `public.tickets`."""
    await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}")
    by_district = " PARTITION BY LIST (district_code)" if partitioned else ""
    await conn.execute(
        f"CREATE TABLE {schema}.tickets (LIKE public.tickets INCLUDING DEFAULTS){by_district}"
    )
    for k in range(PARTITIONS if partitioned else 0):
        code = _district(k)
        await conn.execute(
            f"CREATE TABLE {schema}.tickets_{code.lower()} PARTITION OF {schema}.tickets"
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
    await conn.execute(f"INSERT INTO {schema}.tickets SELECT {moved} FROM public.tickets")
    copied = time.perf_counter() - started
    started = time.perf_counter()
    key = "(district_code, id)" if partitioned else "(id)"
    await conn.execute(f"ALTER TABLE {schema}.tickets ADD PRIMARY KEY {key}")
    for _name, definition in await conn.fetch(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
        " WHERE indrelid = 'public.tickets'::regclass AND NOT indisprimary"
    ):
        definition = definition.replace(" ON public.tickets ", f" ON {schema}.tickets ")
        if partitioned and "UNIQUE" in definition:  # a partitioned table's keys hold its key
            held = "(district_code, reporter, client_id)"
            definition = definition.replace("(reporter, client_id)", held)
        await conn.execute(definition)
    await conn.execute(f"ANALYZE {schema}.tickets")
    built = time.perf_counter() - started
    print(
        f"{schema}: copied the tickets in {copied:.0f} s,"
        f" built the keys and indexes in {built:.0f} s"
    )


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
    parser.add_argument("--keep", action="store_true", help="keep the flat and proto schemas")
    parser.add_argument("--built", action="store_true", help="a --keep run left them")
    args = parser.parse_args()
    url = make_url(ADMIN_URL).set(database=args.database).render_as_string()
    conn = await connect(url)
    if not args.built:
        await build(conn, "flat", partitioned=False)
        await build(conn, "proto", partitioned=True)
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
    print(
        "\n| request | statement | as generated: one district | a province, one table |"
        " a province, a partition per district |\n|---|---|---|---|---|"
    )
    for name, path, user in READS:
        sent = await statements_of(app, database, path, worker if user == "WORKER" else user)
        for statement, parameters in sent:
            if "tickets" not in statement:
                continue
            plans = [await explain(conn, statement, parameters)]
            for schema in ("flat", "proto"):
                trial = conn.transaction()
                await trial.start()
                try:
                    await conn.execute(f"SET LOCAL search_path = {schema}, public")
                    plans.append(await explain(conn, statement, parameters))
                finally:
                    await trial.rollback()
            short = " ".join(statement.split())[:50]
            print(f"| {name} | `{short}…` | {' | '.join(plans)} |", flush=True)
    await database.dispose()
    if not args.keep:
        await conn.execute("DROP SCHEMA proto CASCADE; DROP SCHEMA flat CASCADE")
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
