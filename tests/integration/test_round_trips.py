"""Round trips per request on PostgreSQL, counted as they go to the driver: SQLAlchemy's
statements (its cursor events: asyncpg runs them as prepared statements, which its query logger
does not see) and every query asyncpg logs (BEGIN, COMMIT, ROLLBACK and the statements of
`app/direct.py`), after a warm-up request of the same kind. The budgets are ceilings: a change
that adds a round trip to a request fails here, and one that removes some lowers its budget
(docs/benchmarks.md lists today's counts)."""

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from app.db import Database
from tests.helpers import DISPATCH, Api, listen_on_the_wire

pytestmark = pytest.mark.usefixtures("postgres_only")

BUDGETS = {
    "report": 3,
    "dispatch": 3,
    "claim": 3,
    "feedback": 3,
    "verify": 3,
    "list": 2,
    "list of a unit": 2,  # the unit is reference data, read with the process's copy
    "detail": 2,
    "closure statistics": 3,
}


class Wire:
    """The queries sent on the app's connections while counting."""

    def __init__(self) -> None:
        self.counting = False
        self.queries: list[str] = []

    def log(self, query: str) -> None:
        if self.counting:
            self.queries.append(query)

    async def count(self, request: Callable[[], Awaitable[Any]]) -> list[str]:
        self.queries, self.counting = [], True
        try:
            await request()
        finally:
            self.counting = False
        return self.queries


@pytest.fixture
def wire(world: Database) -> Iterator[Wire]:
    wire = Wire()
    stop = listen_on_the_wire(world.engines, wire.log)
    yield wire
    stop()


async def test_round_trips_per_request_stay_within_budget(api: Api, wire: Wire) -> None:
    async def read(path: str, as_: str) -> None:
        response = await api.get(path, as_)
        assert response.status_code == 200, response.text

    tickets = [(await api.report())["id"] for _ in range(2)]
    await api.must(tickets[0], *DISPATCH)  # each step once, to warm up
    await api.must(tickets[0], "claim", "handler")
    await api.must(tickets[0], "feedback", "handler", {"note": "已清理"})
    requests: dict[str, Callable[[], Awaitable[Any]]] = {
        "report": lambda: api.report(),
        "dispatch": lambda: api.must(tickets[1], *DISPATCH),
        "claim": lambda: api.must(tickets[1], "claim", "handler"),
        "feedback": lambda: api.must(tickets[1], "feedback", "handler", {"note": "已清理"}),
        "verify": lambda: api.must(tickets[1], "verify", "worker", {"passed": True}),
        "list": lambda: read("/api/v1/tickets?limit=20", "dispatcher"),
        "list of a unit": lambda: read("/api/v1/tickets?org_unit=GC01&status=closed", "supervisor"),
        "detail": lambda: read(f"/api/v1/tickets/{tickets[1]}", "dispatcher"),
        "closure statistics": lambda: read(
            "/api/v1/stats/closure?org_unit=NH&from=2026-01-01&to=2026-12-01", "supervisor"
        ),
    }
    await api.must(tickets[0], "verify", "worker", {"passed": True})
    for name in ("list", "list of a unit", "detail", "closure statistics"):
        await requests[name]()
    for name, request in requests.items():
        queries = await wire.count(request)
        assert len(queries) <= BUDGETS[name], (name, [query[:60] for query in queries])
