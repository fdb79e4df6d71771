"""What building a read's statement for every request costs, against building it once per shape
(`app/tickets/listing.py`, `service.read_visible_ticket`): both ways in one process, in
alternating batches, so that the machine's drift falls on both alike.

Serves Gridwork in process on a database the load benchmark kept and sends a district
supervisor's list page (50 tickets, and 1), and ticket pages, each way; prints the median and
least CPU per request:

    .venv/bin/python -m bench.statement_reuse --database gridwork_bench_xxxxxxxx

"Built per request" is the code before statements were built once: the statement built with
its values, run by the ORM session, its rows made dicts by zipping them with the keys.
"""

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from datetime import datetime
from statistics import median
from typing import Any

import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.config import Settings
from app.db import Database
from app.main import create_app, keep_start_up_out_of_collections
from app.pagination import Page, PageParams
from app.tickets import listing, service
from app.tickets.models import Ticket
from bench.district import ADMIN_URL
from bench.load.run import SECRET, token

KEYS = tuple(service.TICKET_ROW.selected_columns.keys())


def as_dict(row: Any) -> dict[str, Any]:
    return dict(zip(KEYS, row, strict=True))


async def page_built_per_request(
    session: AsyncSession, user: User, filters: Any, page: PageParams, now: datetime
) -> Page[dict[str, Any]]:
    query = service.TICKET_ROW.where(*service.visible_parts(user))  # a supervisor's one part
    query = query.order_by(Ticket.reported_at.desc(), Ticket.id.desc()).limit(page.limit + 1)
    rows = (await session.execute(query)).all()
    return page.page(rows, lambda r: [r.reported_at.isoformat(), r.id], as_dict)


async def ticket_built_per_request(session: AsyncSession, user: User, ticket_id: int) -> Ticket:
    query = service.TICKET_ROW.where(Ticket.id == ticket_id, service.visible_clause(user))
    row = (await session.execute(query)).first()
    if row is None:
        raise LookupError(ticket_id)
    (ticket,) = await service.read_only_tickets(session, [as_dict(row)])
    return ticket


@contextmanager
def replaced(owner: Any, name: str, value: Callable[..., Awaitable[Any]] | None) -> Any:
    kept = getattr(owner, name)
    setattr(owner, name, value or kept)
    try:
        yield
    finally:
        setattr(owner, name, kept)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--batch", type=int, default=25)
    args = parser.parse_args()
    url = make_url(ADMIN_URL).set(database=args.database).render_as_string()
    app = create_app(Settings(database_url=url, secret_key=SECRET, env="production"))
    keep_start_up_out_of_collections()
    headers = {"Authorization": f"Bearer {token('district')}"}
    reads = {
        "list: district, first page": ("/api/v1/tickets", listing, "newest_page"),
        "list: district, one ticket": ("/api/v1/tickets?limit=1", listing, "newest_page"),
        "detail": ("/api/v1/tickets/{n}", service, "read_visible_ticket"),
    }
    old: dict[str, Callable[..., Awaitable[Any]]] = {
        "newest_page": page_built_per_request,
        "read_visible_ticket": ticket_built_per_request,
    }
    transport = httpx.ASGITransport(app=app)
    print("| request | built per request: median, least CPU ms | built once |\n|---|---:|---:|")
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        for name, (path, owner, attribute) in reads.items():
            cpu: dict[str, list[float]] = {"per request": [], "once": []}
            sent = 0
            for round_ in range(args.rounds + 2):  # the first two warm both ways
                for way, replacement in (("per request", old[attribute]), ("once", None)):
                    with replaced(owner, attribute, replacement):
                        started = time.process_time()
                        for _ in range(args.batch):
                            sent += 1
                            target = path.format(n=1000 + sent * 997 % 500_000)
                            response = await client.get(target, headers=headers)
                            if response.status_code != 200:
                                raise RuntimeError(f"{target}: {response.status_code}")
                        spent = (time.process_time() - started) * 1000 / args.batch
                    if round_ >= 2:
                        cpu[way].append(spent)
            print(
                f"| {name} | "
                + " | ".join(f"{median(xs):.2f}, {min(xs):.2f}" for xs in cpu.values())
                + " |",
                flush=True,
            )
    database: Database = app.state.database
    await database.dispose()


if __name__ == "__main__":
    asyncio.run(main())
