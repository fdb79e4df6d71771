"""Bad input gets a 4xx problem response and writes nothing."""

import base64
import json
from typing import Any

import pytest

from app.db import Database
from app.tickets.models import Ticket, TicketHistory
from tests.helpers import Api, count, event_body


def event(**overrides: Any) -> dict[str, Any]:
    return event_body(**overrides)


BAD_EVENTS = {
    "lat as text": (event(lat="north"), ["body", "lat"]),
    "urgent as a list": (event(urgent=[1]), ["body", "urgent"]),
    "missing category": (event(category_code=None), ["body", "category_code"]),
    "missing client_id": (event(client_id=None), ["body", "client_id"]),
    "client_id not a uuid": (event(client_id="abc"), ["body", "client_id"]),
    "latitude out of range": (event(lat=91.0), ["body", "lat"]),
    "longitude out of range": (event(lon=-181.0), ["body", "lon"]),
    "unknown category": (event(category_code="no_such"), ["body", "category_code"]),
    "point outside every grid": (event(lat=23.2, lon=113.3), ["body", "lat"]),
    "description too long": (event(description="长" * 4001), ["body", "description"]),
    "blank description": (event(description="   "), ["body", "description"]),
    "occurred in the future": (
        event(occurred_at="2026-11-24T10:00:00+08:00"),
        ["body", "occurred_at"],
    ),
    "occurred_at without offset": (
        event(occurred_at="2026-11-23T09:00:00"),
        ["body", "occurred_at"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_EVENTS))
async def test_bad_event_is_422_and_writes_nothing(api: Api, world: Database, case: str) -> None:
    body, loc = BAD_EVENTS[case]

    response = await api.post("/api/v1/events", "worker", body)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["title"] and problem["detail"]
    assert loc in [e["loc"][: len(loc)] for e in problem["errors"]]
    assert await count(world, Ticket) == 0
    assert await count(world, TicketHistory) == 0


async def test_body_that_is_not_json_is_422(api: Api, world: Database) -> None:
    response = await api.client.post(
        "/api/v1/events",
        content=b"{not json",
        headers={**(await api.headers("worker")), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert await count(world, Ticket) == 0


async def test_point_just_outside_a_grid_snaps_to_it(api: Api) -> None:
    # 30 m south of GC01-1's southern edge (23.03 N).
    ticket = await api.report(at=(23.03 - 30 / 111_195, 113.105))
    assert ticket["grid_code"] == "GC01-1"


async def test_unknown_ticket_is_404(api: Api) -> None:
    for path in ("/api/v1/tickets/999999", "/api/v1/tickets/999999/history"):
        response = await api.get(path, "admin")
        assert response.status_code == 404
        assert response.json()["type"] == "/problems/not-found"
    response = await api.act(999999, "claim", "admin")
    assert response.status_code == 404


async def test_ticket_id_not_a_number_is_422(api: Api) -> None:
    response = await api.get("/api/v1/tickets/abc", "admin")
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["path", "ticket_id"]


BAD_ACTIONS = [
    ("dispatch", {"department_code": "NO-SUCH"}, 422),
    ("dispatch", {"department_code": "NH-CG", "time_limit": {"value": 0, "unit": "hours"}}, 422),
    ("dispatch", {"department_code": "NH-CG", "time_limit": {"value": 2, "unit": "weeks"}}, 422),
    ("dispatch", {"department_code": "NH-CG", "expected_version": "one"}, 422),
    ("dispatch", {"department_code": "NH-CG", "surprise": True}, 422),
    ("reject", {}, 422),
    ("reject", {"note": "   "}, 422),
    ("merge", {"duplicate_of": 999999}, 422),
    ("merge", {}, 422),
    ("escalate", None, 422),
]


@pytest.mark.parametrize(("action", "body", "expected"), BAD_ACTIONS)
async def test_bad_action_body_changes_nothing(
    api: Api, action: str, body: dict[str, Any] | None, expected: int
) -> None:
    ticket = await api.ticket_in("reported")

    response = await api.act(ticket["id"], action, "dispatcher", body)

    assert response.status_code == expected, response.text
    after = (await api.get(f"/api/v1/tickets/{ticket['id']}", "admin")).json()
    assert after["version"] == ticket["version"]
    assert len(await api.history(ticket["id"])) == 1


async def test_merge_into_itself_is_422(api: Api) -> None:
    ticket = await api.ticket_in("reported")
    body = {"duplicate_of": ticket["id"], "note": "重复"}
    response = await api.act(ticket["id"], "merge", "dispatcher", body)
    assert response.status_code == 422


async def test_rate_score_out_of_range_is_422(api: Api) -> None:
    ticket = await api.ticket_in("closed")
    for score in (0, 6, "five"):
        response = await api.act(ticket["id"], "rate", "worker", {"score": score})
        assert response.status_code == 422
    assert len(await api.history(ticket["id"])) == 5


async def test_bad_list_parameters(api: Api) -> None:
    for query in (
        "limit=0",
        "limit=501",
        "cursor=garbage",
        "status=lost",
        "warning=blue",
        "reported_from=yesterday",
        "overdue=maybe",
    ):
        response = await api.get(f"/api/v1/tickets?{query}", "admin")
        assert response.status_code == 422, query
        assert response.headers["content-type"] == "application/problem+json"
    response = await api.get("/api/v1/tickets?org_unit=NOPE", "admin")
    assert response.status_code == 404


def cursor_of(key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": key}).encode()).decode()


async def test_forged_cursors_are_422(api: Api) -> None:
    ticket = await api.ticket_in("reported")
    cases = [
        (f"/api/v1/tickets/{ticket['id']}/history", "abc"),
        ("/api/v1/tickets", "abc"),
        ("/api/v1/tickets", ["not a time", 1]),
        ("/api/v1/org-units", [1, 2, 3]),
        ("/api/v1/categories", 7),
    ]
    for path, key in cases:
        response = await api.get(f"{path}?cursor={cursor_of(key)}", "admin")
        assert response.status_code == 422, (path, key, response.text)


HUGE = 10**20


async def test_ids_out_of_range_are_422(api: Api) -> None:
    ticket = await api.ticket_in("reported")
    for path in (f"/api/v1/tickets/{HUGE}", f"/api/v1/tickets/{HUGE}/history", "/api/v1/tickets/0"):
        assert (await api.get(path, "admin")).status_code == 422, path
    assert (await api.act(HUGE, "claim", "admin")).status_code == 422
    merge = await api.act(ticket["id"], "merge", "dispatcher", {"duplicate_of": HUGE, "note": "x"})
    assert merge.status_code == 422
    for key in (2**63, [datetime_text(), HUGE], [datetime_text(), 1e400], ["2026-11-23T10:00", 1]):
        path = (
            "/api/v1/tickets"
            if isinstance(key, list)
            else f"/api/v1/tickets/{ticket['id']}/history"
        )
        response = await api.get(f"{path}?cursor={cursor_of(key)}", "admin")
        assert response.status_code == 422, (key, response.text)


def datetime_text() -> str:
    return "2026-11-23T10:00:00+08:00"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/org-units/a%00b",
        "/api/v1/users/a%00b",
        "/api/v1/tickets?category=a%00b",
        "/api/v1/tickets?org_unit=a%00b",
    ],
)
async def test_nul_characters_in_queries_are_4xx(api: Api, path: str) -> None:
    response = await api.get(path, "admin")
    assert response.status_code in (200, 404, 422), response.text  # SQLite stores NUL; PG: 422


async def test_nul_characters_in_bodies_change_nothing(api: Api, world: Database) -> None:
    for body in (event(description="垃圾\x00堆"), event(category_code="gar\x00bage")):
        response = await api.post("/api/v1/events", "worker", body)
        assert response.status_code == 422, response.text
    login = await api.client.post(
        "/api/v1/auth/token", data={"username": "ad\x00min", "password": "x" * 10}
    )
    assert login.status_code in (401, 422)
    assert await count(world, Ticket) == 0


@pytest.mark.parametrize(
    "query",
    [
        "reported_from=0001-01-01",
        "reported_to=9999-12-31T23:59:59-14:00",
        "reported_from=2026-11-23T10:00:00",
    ],
)
async def test_extreme_or_naive_dates_are_422(api: Api, query: str) -> None:
    response = await api.get(f"/api/v1/tickets?{query}", "admin")
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"][0] == "query"


async def test_extreme_occurred_at_is_422(api: Api, world: Database) -> None:
    response = await api.post(
        "/api/v1/events", "worker", event(occurred_at="0001-01-01T00:00:00+14:00")
    )
    assert response.status_code == 422
    assert await count(world, Ticket) == 0


async def test_unknown_attachments_are_422(api: Api, world: Database) -> None:
    response = await api.post("/api/v1/events", "worker", event(attachment_ids=["photo-1"]))
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "attachment_ids", 0]
    ticket = await api.ticket_in("in_progress")
    feedback = await api.act(
        ticket["id"], "feedback", "handler", {"note": "done", "attachment_ids": ["photo-2"]}
    )
    assert feedback.status_code == 422
    assert (
        await api.act(ticket["id"], "feedback", "handler", {"note": "done", "attachment_ids": []})
    ).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        # a cursor nested deeper than the JSON reader goes
        "/api/v1/tickets?cursor="
        + base64.urlsafe_b64encode(b'{"k":' + b"[" * 5000 + b"]" * 5000 + b"}").decode(),
        "/api/v1/stats/closure?org_unit=NH&from=2026-01-01&to=9999-12-31",
        "/api/v1/stats/closure?org_unit=NH&from=0001-01-01&to=2026-01-01",
        "/api/v1/stats/patrol?org_unit=NH&date=9999-12-31",
        "/api/v1/patrol/tracks?worker=worker&date=9999-12-31",
        f"/api/v1/tickets/{2**70}/attachments",
    ],
    ids=["nested cursor", "stats to 9999", "stats from year 1", "patrol", "track", "ticket id"],
)
async def test_shapes_that_crashed_are_refused(api: Api, path: str) -> None:
    response = await api.get(path, "admin")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def _chunks(total: int, size: int = 64 * 1024) -> Any:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "streamed"])
async def test_an_oversized_body_is_refused_before_authentication(
    api: Api, world: Database, declared: bool
) -> None:
    """No token, 300 MiB of JSON offered: 413 long before the body is read, never a 401 after
    reading it all."""
    headers = {"content-type": "application/json"}
    if declared:
        headers["content-length"] = str(300 * 1024 * 1024)
        content: Any = b"{}"
    else:
        content = _chunks(300 * 1024 * 1024)

    response = await api.client.post("/api/v1/events", content=content, headers=headers)

    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "at most 262,144 bytes" in response.json()["detail"]
    assert await count(world, Ticket) == 0


async def test_a_body_within_the_limit_still_needs_a_token(api: Api) -> None:
    response = await api.client.post("/api/v1/events", json={"padding": "x" * 200_000})
    assert response.status_code == 401


async def test_an_oversized_open311_form_gets_the_channels_error(api: Api) -> None:
    form = {"api_key": "k", "service_code": "garbage", "description": "x" * 100_000}
    response = await api.client.post("/open311/v2/requests.json", data=form)
    assert response.status_code == 413
    assert response.json()[0]["code"] == 413


async def test_an_open311_client_id_past_32_bits_is_422(api: Api) -> None:
    path = f"/api/v1/open311/clients/{2**40}"
    response = await api.client.delete(path, headers=await api.headers("admin"))
    assert response.status_code == 422
