import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.auth.models import Role, User
from app.auth.security import hash_password_sync
from app.db import Database
from app.demo import DEMO_PASSWORD

# Points inside demo grids (see app/demo.py: 0.01-degree squares from 113.10 E, 23.03 N).
IN_GC01_1 = (23.035, 113.105)  # grid GC01-1, community GC01, town GC
IN_GC02_1 = (23.035, 113.125)  # grid GC02-1, community GC02, town GC
IN_DL01_1 = (23.035, 113.145)  # grid DL01-1, community DL01, town DL


def event_body(at: tuple[float, float] = IN_GC01_1, **fields: Any) -> dict[str, Any]:
    """A report of exposed rubbish at `at`; a field given as None is left out."""
    body = {
        "client_id": str(uuid.uuid4()),
        "category_code": "garbage",
        "description": "暴露垃圾堆放在路边",
        "lat": at[0],
        "lon": at[1],
        **fields,
    }
    return {k: v for k, v in body.items() if v is not None}


async def add_user(
    session: AsyncSession,
    username: str,
    role: Role,
    org_unit: str | None,
    department: str | None,
    now: datetime,
) -> None:
    session.add(
        User(
            username=username,
            password_hash=hash_password_sync(DEMO_PASSWORD),
            display_name=username,
            role=role,
            org_unit_code=org_unit,
            department_code=department,
            is_active=True,
            token_generation=0,
            failed_logins=0,
            created_at=now,
        )
    )


async def count(database: Database, model: type) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


class Api:
    """The HTTP API as each demo user sees it, with real tokens from the token endpoint."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self._tokens: dict[str, str] = {}

    async def login(self, username: str, password: str = DEMO_PASSWORD) -> httpx.Response:
        return await self.client.post(
            "/api/v1/auth/token", data={"username": username, "password": password}
        )

    async def headers(self, username: str) -> dict[str, str]:
        if username not in self._tokens:
            response = await self.login(username)
            assert response.status_code == 200, response.text
            self._tokens[username] = response.json()["access_token"]
        return {"Authorization": f"Bearer {self._tokens[username]}"}

    async def get(self, path: str, as_: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, headers=await self.headers(as_), **kw)

    async def post(self, path: str, as_: str, json: Any = None, **kw: Any) -> httpx.Response:
        return await self.client.post(path, headers=await self.headers(as_), json=json, **kw)

    async def report(
        self, as_: str = "worker", at: tuple[float, float] = IN_GC01_1, **fields: Any
    ) -> dict[str, Any]:
        response = await self.post("/api/v1/events", as_, event_body(at, **fields))
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def act(
        self, ticket_id: int, action: str, as_: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        return await self.post(f"/api/v1/tickets/{ticket_id}/actions/{action}", as_, body)

    async def must(
        self, ticket_id: int, action: str, as_: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self.act(ticket_id, action, as_, body)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def history(self, ticket_id: int, as_: str = "admin") -> list[dict[str, Any]]:
        response = await self.get(f"/api/v1/tickets/{ticket_id}/history", as_)
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    async def ticket_in(
        self, status: str, *, assisted: bool = False, **report_fields: Any
    ) -> dict[str, Any]:
        """A ticket of the demo worker in GC01-1 walked to `status` through the API; `assisted`:
        dispatched with NH-SZ assisting (`sz_handler`), which answers before the feedback."""
        ticket = await self.report(**report_fields)
        tid = ticket["id"]
        for action, user, body in WALKS[status]:
            if action == "merge":
                body = {"duplicate_of": (await self.report())["id"], "note": "重复上报"}
            if assisted and action == "dispatch":
                body = {**(body or {}), "assisting_department_codes": ["NH-SZ"]}
            if assisted and action == "feedback":
                await self.must(tid, "assist", "sz_handler", {"note": "已配合疏通"})
            ticket = await self.must(tid, action, user, body)
        assert ticket["status"] == status
        return ticket


DISPATCH = ("dispatch", "dispatcher", {"department_code": "NH-CG"})
CLAIM = ("claim", "handler", None)
FEEDBACK = ("feedback", "handler", {"note": "已清理"})
VERIFY = ("verify", "worker", {"passed": True})

WALKS: dict[str, list[tuple[str, str, dict[str, Any] | None]]] = {
    "reported": [],
    "checking": [("request_check", "dispatcher", None)],
    "dispatched": [DISPATCH],
    "in_progress": [DISPATCH, CLAIM],
    "suspended": [DISPATCH, CLAIM, ("suspend", "handler", {"note": "等待配件"})],
    "feedback": [DISPATCH, CLAIM, FEEDBACK],
    "closed": [DISPATCH, CLAIM, FEEDBACK, VERIFY],
    "rated": [DISPATCH, CLAIM, FEEDBACK, VERIFY, ("rate", "worker", {"score": 5})],
    "rejected": [("reject", "dispatcher", {"note": "不属于受理范围"})],
    "merged": [("merge", "dispatcher", None)],
}


def listen_on_the_wire(
    engines: Iterable[AsyncEngine], on_query: Callable[[str], None]
) -> Callable[[], None]:
    """Calls `on_query` with each query the engines send: SQLAlchemy's statements
    (its cursor events: asyncpg runs them as prepared statements, which its query logger does
    not see) and every query asyncpg logs (BEGIN, COMMIT, ROLLBACK and the statements of
    `app/direct.py`). Returns what stops the listening."""
    logged: set[int] = set()
    listening = [True]

    def on_logged(record: Any) -> None:
        if listening[0]:  # (a connection keeps its logger)
            on_query(record.query)

    def on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        if id(driver) not in logged and hasattr(driver, "add_query_logger"):
            logged.add(id(driver))
            driver.add_query_logger(on_logged)

    def on_execute(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        on_query(statement)

    engines = [engine.sync_engine for engine in engines]
    for engine in engines:
        event.listen(engine, "checkout", on_checkout)
        event.listen(engine, "before_cursor_execute", on_execute)

    def stop() -> None:
        listening[0] = False
        for engine in engines:
            event.remove(engine, "checkout", on_checkout)
            event.remove(engine, "before_cursor_execute", on_execute)

    return stop
