import io
import json
import logging
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.clock import FrozenClock
from app.db import Database
from app.observability import JsonFormatter, exposition
from app.tickets.machine import Action
from tests.helpers import Api


async def test_health_and_readiness_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ok"}


async def test_openapi_documents_the_contract(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path in (
        "/api/v1/auth/token",
        "/api/v1/users/me",
        "/api/v1/org-units",
        "/api/v1/departments",
        "/api/v1/categories",
        "/api/v1/events",
        "/api/v1/tickets",
        "/api/v1/tickets/{ticket_id}",
        "/api/v1/tickets/{ticket_id}/history",
    ):
        assert path in paths, path
    for action in Action:
        operation = paths[f"/api/v1/tickets/{{ticket_id}}/actions/{action.value}"]["post"]
        assert operation["summary"].endswith(action.value)
    assert "Problem" in schema["components"]["schemas"]


async def test_unknown_path_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_each_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    generated = (await client.get("/healthz")).headers["x-request-id"]
    assert len(generated) == 32
    given = await client.get("/healthz", headers={"X-Request-ID": "desk-7.call-42"})
    assert given.headers["x-request-id"] == "desk-7.call-42"
    odd = await client.get("/healthz", headers={"X-Request-ID": "x" * 65})
    assert odd.headers["x-request-id"] != "x" * 65


async def test_access_lines_are_json_with_the_request_id(api: Api) -> None:
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("gridwork.access")
    access.addHandler(handler)
    previous_level = access.level
    access.setLevel(logging.INFO)
    try:
        ticket = await api.report()
        response = await api.get(f"/api/v1/tickets/{ticket['id']}", "dispatcher")
    finally:
        access.removeHandler(handler)
        access.setLevel(previous_level)
    entries = [json.loads(line) for line in lines.getvalue().splitlines()]
    read = next(e for e in entries if e["request_id"] == response.headers["x-request-id"])
    assert read["route"] == "/api/v1/tickets/{ticket_id}"
    assert (read["method"], read["status"], read["level"]) == ("GET", 200, "info")
    assert read["duration_ms"] >= 0


async def test_metrics_show_latency_open_tickets_overdue_and_scheduler_lag(
    api: Api, clock: FrozenClock
) -> None:
    first = await api.report()
    await api.report()
    await api.must(first["id"], "dispatch", "dispatcher", {"department_code": "NH-CG"})
    clock.advance(timedelta(hours=5))  # both past their limits; no scheduler has run

    text = (await api.client.get("/metrics")).text

    metrics = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert metrics['gridwork_open_tickets{status="reported"}'] == 1
    assert metrics['gridwork_open_tickets{status="dispatched"}'] == 1
    assert metrics['gridwork_open_tickets{status="feedback"}'] == 0
    assert metrics["gridwork_overdue_open_tickets"] == 2
    # the report's alarm fell due (48 minutes after it was filed) 4 h 12 min ago
    assert metrics["gridwork_scheduler_lag_seconds"] == 4 * 3600 + 12 * 60
    assert any(
        key.startswith("gridwork_http_request_duration_seconds_count{")
        and 'route="/api/v1/tickets/{ticket_id}/actions/dispatch"' in key
        for key in metrics
    )


async def test_an_unexpected_error_still_answers_with_its_request_id(app: FastAPI) -> None:
    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridwork.test") as client:
        response = await client.get("/boom", headers={"X-Request-ID": "trace-500"})
        odd_method = await client.request("FROB", "/healthz")
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-500"
    assert odd_method.status_code == 405
    assert 'method="other",route="/healthz",status="405"' in metrics
    assert 'method="FROB"' not in metrics


def test_ticket_figures_appear_once_in_multiprocess_mode(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    figures = [GaugeMetricFamily("gridwork_overdue_open_tickets", "overdue", value=3)]
    for _ in range(2):  # nothing is left behind in the directory by a scrape
        text = exposition(figures).decode()
        assert text.count("\ngridwork_overdue_open_tickets ") == 1
    assert list(tmp_path.iterdir()) == []


async def test_database_errors_carry_no_parameters(world: Database) -> None:
    """A failed statement's error (and so any log of it) shows the SQL, never the values."""
    secret = "13800138000-secret"
    async with world.sessions() as session:
        with pytest.raises(DBAPIError) as failure:
            await session.execute(
                text("INSERT INTO users (username, password_hash) VALUES ('admin', :secret)"),
                {"secret": secret},
            )
    assert secret not in str(failure.value)
    assert "hide_parameters" in str(failure.value)
