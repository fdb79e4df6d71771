"""What each index of `tickets` under question does for the requests that could use it: the
statements of each request as the app sends them, explained (ANALYZE, BUFFERS) with the
indexes as they are and, inside a transaction rolled back afterwards, with the index dropped
(or, when it is absent, created). On a database the load benchmark kept:

    .venv/bin/python -m bench.index_plans --database gridwork_bench_xxxxxxxx
"""

import argparse
import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import Database
from app.main import create_app
from bench.district import ADMIN_URL, connect
from bench.load.run import SECRET, token

Request = tuple[str, str]  # path, user
YEAR = "from=2025-11-01&to=2026-11-01&group_by=month"
OPEN = "('checking', 'dispatched', 'feedback', 'in_progress', 'reported', 'suspended')"
# Each index under question, as it is (or was) created, and the requests (or, for a foreign
# key's check, the statement) that could use it.
QUESTIONS: list[tuple[str, str, list[Request | str]]] = [
    (
        "ix_tickets_district_listing",
        "CREATE INDEX ix_tickets_district_listing ON tickets (district_code, reported_at, id)",
        [("/api/v1/tickets?limit=20", "district"), ("/api/v1/tickets?limit=20", "town")],
    ),
    (
        "ix_tickets_reporter_listing",
        "CREATE INDEX ix_tickets_reporter_listing ON tickets (reporter, reported_at, id)",
        [("/api/v1/tickets?limit=20", "w42"), ("/api/v1/tickets?awaiting=me", "w42")],
    ),
    (
        "ix_tickets_open_town",
        "CREATE INDEX ix_tickets_open_town ON tickets (town_code, reported_at)"
        f" WHERE status IN {OPEN}",
        [(f"/api/v1/stats/closure?org_unit=T3&{YEAR}", "district")],
    ),
    (
        "ix_tickets_duplicate_of",
        "CREATE INDEX ix_tickets_duplicate_of ON tickets (duplicate_of)"
        " WHERE duplicate_of IS NOT NULL",
        ["SELECT 1 FROM ONLY tickets x WHERE duplicate_of = 1000 FOR KEY SHARE OF x"],
    ),
]


async def statements_of(app: Any, database: Database, path: str, user: str) -> list[Any]:
    """The SELECTs a request sends, with their parameters (after a warm-up request)."""
    sent: list[tuple[str, Any]] = []

    def note(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    headers = {"Authorization": f"Bearer {token(user)}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        await client.get(path, headers=headers)
        for engine in database.engines:
            event.listen(engine.sync_engine, "before_cursor_execute", note)
        response = await client.get(path, headers=headers)
        for engine in database.engines:
            event.remove(engine.sync_engine, "before_cursor_execute", note)
    response.raise_for_status()
    return [s for s in sent if "FROM users" not in s[0]]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def explain(conn: asyncpg.Connection, statement: str, parameters: Any) -> str:
    rows = await conn.fetchval(
        f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {statement}", *(parameters or ())
    )
    top = json.loads(rows)[0]
    plan = top["Plan"]
    scans = sorted(
        {
            f"{n['Node Type']} {n.get('Index Name', n.get('Relation Name', ''))}".strip()
            for n in _nodes(plan)
            if "Scan" in n["Node Type"]
        }
    )
    buffers = plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0)
    return f"{top['Execution Time']:.2f} ms, {buffers:,} buffers: {'; '.join(scans)}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True)
    args = parser.parse_args()
    url = make_url(ADMIN_URL).set(database=args.database).render_as_string()
    app = create_app(Settings(database_url=url, secret_key=SECRET, env="production"))
    database: Database = app.state.database
    conn = await connect(url)
    for name, create, uses in QUESTIONS:
        exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
        ddl = f"DROP INDEX {name}" if exists else create
        print(f"\n## {name} ({'present' if exists else 'absent'})\n")
        for use in uses:
            statements = (
                [(use, ())] if isinstance(use, str) else await statements_of(app, database, *use)
            )
            label = use if isinstance(use, str) else f"GET {use[0]} as {use[1]}"
            for statement, parameters in statements:
                as_is = await explain(conn, statement, parameters)
                trial = conn.transaction()  # DDL is transactional: rolled back below
                await trial.start()
                try:
                    await conn.execute(ddl)
                    changed = await explain(conn, statement, parameters)
                finally:
                    await trial.rollback()
                print(f"- {label}: `{' '.join(statement.split())[:90]}…`")
                print(f"  - as it is: {as_is}\n  - after `{ddl[:40]}…`: {changed}")
    await conn.close()
    await database.dispose()


if __name__ == "__main__":
    asyncio.run(main())
