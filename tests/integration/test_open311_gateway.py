"""The GeoReport v2 gateway through HTTP: services, filing, reading, updates, and every error
in the spec's form."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

import httpx
import pytest

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.main import create_app
from app.open311 import gateway
from app.open311.formats import Format, respond
from app.tickets.models import Ticket
from tests.helpers import IN_DL01_1, IN_GC01_1, Api, count, event_body

V2 = "/open311/v2"
CITIZEN = {
    "email": "zhang.wei@example.com",
    "first_name": "伟",
    "last_name": "张",
    "phone": "13800138000",
    "account_id": "citizen-42",
    "device_id": "device-7",
}


async def register(api: Api, name: str = "市民通") -> dict[str, Any]:
    response = await api.client.post(
        "/api/v1/open311/clients", json={"name": name}, headers=await api.headers("admin")
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
async def key(api: Api) -> str:
    return str((await register(api))["api_key"])


def request_form(
    key: str, at: tuple[float, float] | None = IN_GC01_1, **fields: str
) -> dict[str, str]:
    form = {"api_key": key, "service_code": "garbage", "description": "小区门口垃圾没人清理"}
    if at is not None:
        form |= {"lat": str(at[0]), "long": str(at[1])}
    return {k: v for k, v in (form | fields).items() if v is not None}


async def file(
    client: httpx.AsyncClient, form: dict[str, str], fmt: str = "json"
) -> httpx.Response:
    return await client.post(f"{V2}/requests.{fmt}", data=form)


@asynccontextmanager
async def served(
    world: Database, settings: Settings, clock: FrozenClock, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app run with some settings changed."""
    app = create_app(settings.model_copy(update=overrides), database=world, clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gridwork.test") as client:
        yield client


def ticket_id(number: str) -> int:
    return int(number.rsplit("-", 1)[1])


def only_error(response: httpx.Response, status: int) -> str:
    """The description of the single GeoReport v2 error the response must be."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, list) and len(body) == 1 and body[0]["code"] == status, body
    return str(body[0]["description"])


# Services -------------------------------------------------------------------------------------


async def test_services_are_the_categories_in_json_and_xml(client: httpx.AsyncClient) -> None:
    services = (await client.get(f"{V2}/services.json")).json()
    by_code = {s["service_code"]: s for s in services}
    assert set(by_code) == {
        "dispute",
        "fire_lane",
        "garbage",
        "illegal_building",
        "manhole",
        "road_damage",
    }
    assert by_code["garbage"]["service_name"] == "暴露垃圾"
    assert by_code["garbage"]["metadata"] is False
    assert by_code["road_damage"]["metadata"] is True
    assert by_code["road_damage"]["type"] == "realtime"

    response = await client.get(f"{V2}/services.xml")
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    assert response.content.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    root = ElementTree.fromstring(response.content)
    assert root.tag == "services"
    names = {s.findtext("service_code"): s.findtext("service_name") for s in root}
    assert names["road_damage"] == "道路破损"
    assert root.find("service[service_code='road_damage']/metadata").text == "true"  # type: ignore[union-attr]


async def test_a_service_definition_lists_its_attributes(client: httpx.AsyncClient) -> None:
    definition = (await client.get(f"{V2}/services/road_damage.json")).json()
    assert definition["service_code"] == "road_damage"
    size, blocking = definition["attributes"]
    assert (size["code"], size["datatype"], size["required"], size["order"]) == (
        "size",
        "singlevaluelist",
        True,
        1,
    )
    assert [v["key"] for v in size["values"]] == ["small", "medium", "large"]
    assert blocking["required"] is False and blocking["variable"] is True

    root = ElementTree.fromstring((await client.get(f"{V2}/services/road_damage.xml")).content)
    assert root.tag == "service_definition"
    keys = [v.text for v in root.findall("attributes/attribute[code='size']/values/value/key")]
    assert keys == ["small", "medium", "large"]
    plain = (await client.get(f"{V2}/services/garbage.json")).json()
    assert plain == {"service_code": "garbage", "attributes": []}


async def test_discovery_names_the_endpoint_and_formats(client: httpx.AsyncClient) -> None:
    document = (await client.get(f"{V2}/discovery.json")).json()
    (endpoint,) = document["endpoints"]
    assert endpoint["url"] == "http://gridwork.test/open311/v2"
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert set(endpoint["formats"]) == {"text/xml", "application/json"}


# Filing -----------------------------------------------------------------------------------------


async def test_a_citizen_request_becomes_an_open311_ticket_of_the_community(
    api: Api, client: httpx.AsyncClient, key: str, world: Database
) -> None:
    response = await file(
        client, request_form(key, media_url="https://img.example.com/1.jpg") | CITIZEN
    )
    assert response.status_code == 201, response.text
    (created,) = response.json()
    number, token = created["service_request_id"], created["token"]
    assert number.startswith("NH-20261123-")
    assert created["account_id"] is None

    ticket = (
        await client.get(
            f"/api/v1/tickets/{ticket_id(number)}", headers=await api.headers("dispatcher")
        )
    ).json()
    assert ticket["number"] == number
    assert (ticket["source"], ticket["status"], ticket["owner_unit_code"]) == (
        "open311",
        "reported",
        "GC01",
    )
    assert (ticket["grid_code"], ticket["reporter"], ticket["category_code"]) == (
        "GC01-1",
        None,
        "garbage",
    )
    assert ticket["deadline_at"] is not None  # the dispatch limit runs, as for every report
    history = (
        await client.get(
            f"/api/v1/tickets/{ticket['id']}/history", headers=await api.headers("dispatcher")
        )
    ).json()
    assert [(h["actor"], h["action"]) for h in history["items"]] == [("open311:市民通", "report")]

    (read,) = (await client.get(f"{V2}/requests/{number}.json")).json()
    assert read["service_request_id"] == number
    assert (read["status"], read["status_notes"]) == ("open", "received; waiting to be dispatched")
    assert (read["service_code"], read["service_name"]) == ("garbage", "暴露垃圾")
    assert read["description"] == "小区门口垃圾没人清理"
    assert (read["lat"], read["long"]) == IN_GC01_1
    assert read["media_url"] == "https://img.example.com/1.jpg"
    assert read["requested_datetime"] == "2026-11-23T10:00:00+08:00"
    assert read["agency_responsible"] is None and read["expected_datetime"] is None
    assert (await client.get(f"{V2}/tokens/{token}.json")).json() == [
        {"service_request_id": number, "token": token}
    ]

    staff_view = await client.get(
        f"/api/v1/tickets/{ticket['id']}/open311", headers=await api.headers("dispatcher")
    )
    assert staff_view.json()["contact"] == CITIZEN
    outsider = await client.get(
        f"/api/v1/tickets/{ticket['id']}/open311", headers=await api.headers("dl_dispatcher")
    )
    assert outsider.status_code == 404


async def test_the_channel_never_shows_who_reported(
    api: Api, client: httpx.AsyncClient, key: str
) -> None:
    (created,) = (await file(client, request_form(key) | CITIZEN)).json()
    await api.client.post("/api/v1/events", json=event_body(), headers=await api.headers("worker"))
    for fmt in ("json", "xml"):
        listing = await client.get(f"{V2}/requests.{fmt}")
        single = await client.get(f"{V2}/requests/{created['service_request_id']}.{fmt}")
        updates = await client.get(f"{V2}/servicerequestupdates.{fmt}")
        for response in (listing, single, updates):
            assert response.status_code == 200
            for secret in [*CITIZEN.values(), "worker", "网格员"]:
                assert secret not in response.text


async def test_attributes_are_checked_against_the_definition_and_kept(
    api: Api, client: httpx.AsyncClient, key: str
) -> None:
    form = request_form(key, service_code="road_damage") | {
        "attribute[size]": "medium",
        "attribute[fixmystreet_id]": "88",  # an attribute the definition does not know is kept
        "attribute[photos][]": "a",
    }
    body = urlencode([*form.items(), ("attribute[photos][]", "b")])
    response = await client.post(
        f"{V2}/requests.json",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 201, response.text
    number = response.json()[0]["service_request_id"]
    stored = (
        await client.get(
            f"/api/v1/tickets/{ticket_id(number)}/open311", headers=await api.headers("admin")
        )
    ).json()
    assert stored["attributes"] == {"size": "medium", "fixmystreet_id": "88", "photos": ["a", "b"]}


async def test_an_address_naming_a_community_places_the_request_in_it(
    api: Api, client: httpx.AsyncClient, key: str
) -> None:
    form = request_form(key, at=None, address_string="桂城街道东二社区第2网格 文华路12号")
    response = await file(client, form)
    assert response.status_code == 201, response.text
    number = response.json()[0]["service_request_id"]
    ticket = (
        await client.get(f"/api/v1/tickets/{ticket_id(number)}", headers=await api.headers("admin"))
    ).json()
    assert (ticket["owner_unit_code"], ticket["grid_code"]) == ("GC01", "GC01-2")
    assert 113.11 < ticket["lon"] < 113.12 and 23.03 < ticket["lat"] < 23.04  # inside GC01-2
    (read,) = (await client.get(f"{V2}/requests/{number}.json")).json()
    assert read["address"] == "南海区桂城街道东二社区第2网格"  # the grid, not the house number
    staff = await client.get(
        f"/api/v1/tickets/{ticket_id(number)}/open311", headers=await api.headers("dispatcher")
    )
    assert staff.json()["address"] == "桂城街道东二社区第2网格 文华路12号"

    community_only = await file(client, request_form(key, at=None, address_string="大沥镇盐步社区"))
    number = community_only.json()[0]["service_request_id"]
    ticket = (
        await client.get(f"/api/v1/tickets/{ticket_id(number)}", headers=await api.headers("admin"))
    ).json()
    assert (ticket["owner_unit_code"], ticket["grid_code"]) == ("DL01", "DL01-1")


# Errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"service_code": ""}, 400, "service_code was not provided"),
        ({"service_code": "potholes"}, 404, "service_code 'potholes' was not found"),
        ({"lat": "", "long": ""}, 400, "a location is required"),
        ({"long": ""}, 400, "lat and long must be sent together"),
        ({"lat": "north"}, 400, "lat is not a number"),
        ({"lat": "91"}, 400, "lat must be between -90 and 90"),
        ({"lat": "40.0", "long": "116.4"}, 400, "m from every grid"),
        ({"lat": "", "long": "", "address_string": "北京市东城区"}, 400, "names no community"),
        ({"api_key": "not-a-key"}, 403, "api_key was not provided or is not valid"),
        ({"api_key": ""}, 403, "api_key was not provided or is not valid"),
        ({"description": "长" * 4001}, 400, "description is longer than 4000 characters"),
        ({"media_url": "javascript:alert(1)"}, 400, "media_url must be an http or https URL"),
        ({"service_code": "road_damage"}, 400, "attribute[size] is required"),
        ({"description": "垃圾\x0b堆放"}, 400, "description contains control characters"),
        ({"jurisdiction_id": "sfgov.org"}, 201, ""),  # no jurisdiction configured: any is fine
        (
            {"service_code": "road_damage", "attribute[size]": "huge"},
            400,
            "attribute[size]: 'huge' is not one of",
        ),
    ],
)
async def test_bad_requests_get_spec_errors_and_file_nothing(
    client: httpx.AsyncClient,
    key: str,
    world: Database,
    fields: dict[str, str],
    status: int,
    says: str,
) -> None:
    response = await file(client, request_form(key) | fields)
    if status == 201:
        assert response.status_code == 201, response.text
        return
    assert says in only_error(response, status)
    assert await count(world, Ticket) == 0


async def test_a_revoked_key_is_refused(api: Api, client: httpx.AsyncClient) -> None:
    registered = await register(api)
    await client.delete(
        f"/api/v1/open311/clients/{registered['id']}", headers=await api.headers("admin")
    )
    response = await file(client, request_form(registered["api_key"]))
    assert "api_key" in only_error(response, 403)


async def test_errors_are_xml_on_xml_paths(client: httpx.AsyncClient, key: str) -> None:
    response = await file(client, request_form(key, service_code="potholes"), fmt="xml")
    assert response.status_code == 404
    root = ElementTree.fromstring(response.content)
    assert root.tag == "errors"
    assert root.findtext("error/code") == "404"
    assert "potholes" in (root.findtext("error/description") or "")


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        (
            "/requests/NH-20261123-999999.json",
            404,
            "service_request_id 'NH-20261123-999999' was not found",
        ),
        ("/requests/12.json", 404, "was not found"),
        ("/tokens/nothing.json", 404, "token 'nothing' was not found"),
        ("/services/potholes.json", 404, "service_code 'potholes' was not found"),
        (
            "/requests.json?start_date=2026-01-01T00:00:00Z&end_date=2026-05-01T00:00:00Z",
            400,
            "may not span more than 90 days",
        ),
        (
            "/servicerequestupdates.json?start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z",
            400,
            "may not span more than 90 days",
        ),
        (
            "/requests.json?start_date=2026-05-01T00:00:00Z&end_date=2026-01-01T00:00:00Z",
            400,
            "end_date is before start_date",
        ),
        ("/requests.json?start_date=2026-05-01T00:00:00", 400, "needs a time zone"),
        ("/requests.json?start_date=yesterday", 400, "is not a w3 date-time"),
        ("/requests.json?status=pending", 400, "status may be open or closed"),
        ("/requests.json?start_date=9999-12-31T00:00:00Z", 400, "out of range"),
        ("/requests.json?end_date=0001-01-01", 400, "out of range"),
        ("/servicerequestupdates.json?end_date=0001-01-01T00:00:00Z", 400, "out of range"),
        ("/tokens/%00.json", 400, "token contains control characters"),
        ("/requests.json?service_code=%01", 400, "service_code contains control characters"),
        ("/services.html", 400, "fmt"),
        ("/nothing.json", 404, "Not Found"),
    ],
)
async def test_reading_errors_are_in_the_spec_form(
    client: httpx.AsyncClient, path: str, status: int, says: str
) -> None:
    assert says in only_error(await client.get(V2 + path), status)


async def test_a_key_may_file_only_so_many_requests_a_minute(
    world: Database, settings: Settings, clock: FrozenClock, api: Api
) -> None:
    key = (await register(api))["api_key"]
    async with served(world, settings, clock, open311_requests_per_minute=2) as client:
        for _ in range(2):
            assert (await file(client, request_form(key))).status_code == 201
        refused = await file(client, request_form(key))
        assert "2 requests a minute" in only_error(refused, 429)
        assert refused.headers["retry-after"] == "60"
        other_key = (await register(api, "12345热线"))["api_key"]
        assert (await file(client, request_form(other_key))).status_code == 201
        clock.advance(timedelta(seconds=61))
        assert (await file(client, request_form(key))).status_code == 201
    assert await count(world, Ticket) == 4


async def test_a_configured_jurisdiction_must_match(
    world: Database, settings: Settings, clock: FrozenClock
) -> None:
    async with served(world, settings, clock, open311_jurisdiction_id="nanhai.gov.cn") as client:
        assert (await client.get(f"{V2}/services.json")).status_code == 200
        ok = await client.get(f"{V2}/services.json?jurisdiction_id=nanhai.gov.cn")
        assert ok.status_code == 200
        wrong = await client.get(f"{V2}/services.json?jurisdiction_id=sfgov.org")
        assert "jurisdiction_id 'sfgov.org' was not found" in only_error(wrong, 404)
        key = (await register(Api(client)))["api_key"]
        filed = await file(client, request_form(key, jurisdiction_id="sfgov.org"))
        assert "jurisdiction_id 'sfgov.org' was not found" in only_error(filed, 404)
        assert (
            await file(client, request_form(key, jurisdiction_id="nanhai.gov.cn"))
        ).status_code == 201


# Reading ----------------------------------------------------------------------------------------


@pytest.fixture
async def act(api: Api) -> Callable[..., Awaitable[dict[str, Any]]]:
    async def act(user: str, ticket: int, action: str, **body: Any) -> dict[str, Any]:
        response = await api.client.post(
            f"/api/v1/tickets/{ticket}/actions/{action}", json=body, headers=await api.headers(user)
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    return act


async def test_listing_shows_open311_and_public_tickets_only(
    api: Api, client: httpx.AsyncClient, key: str, clock: FrozenClock
) -> None:
    citizen = await file(client, request_form(key, service_code="dispute"))
    citizen_number = citizen.json()[0]["service_request_id"]
    worker = await api.headers("worker")
    public = (await api.client.post("/api/v1/events", json=event_body(), headers=worker)).json()
    private = (
        await api.client.post(
            "/api/v1/events", json=event_body(category_code="dispute"), headers=worker
        )
    ).json()
    listed = [r["service_request_id"] for r in (await client.get(f"{V2}/requests.json")).json()]
    assert listed == [
        public["number"],
        citizen_number,
    ]  # newest first; the private one is not there
    assert private["number"] not in listed
    assert only_error(await client.get(f"{V2}/requests/{private['number']}.json"), 404)

    by_code = (await client.get(f"{V2}/requests.json?service_code=dispute,manhole")).json()
    assert [r["service_request_id"] for r in by_code] == [citizen_number]
    named = await client.get(
        f"{V2}/requests.json?service_request_id={citizen_number},{private['number']}"
        "&service_code=garbage&status=closed"  # ignored: ids override the other filters
    )
    assert [r["service_request_id"] for r in named.json()] == [citizen_number]

    clock.advance(timedelta(days=91))  # the default range is the last 90 days
    assert (await client.get(f"{V2}/requests.json")).json() == []
    old = await client.get(f"{V2}/requests.json?start_date=2026-11-01&end_date=2026-12-01")
    assert len(old.json()) == 2


async def test_listing_is_capped_newest_first(
    api: Api,
    client: httpx.AsyncClient,
    key: str,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gateway, "MAX_RESULTS", 2)
    numbers = []
    for _ in range(3):
        numbers.append((await file(client, request_form(key))).json()[0]["service_request_id"])
        clock.advance(timedelta(minutes=5))
    listed = [r["service_request_id"] for r in (await client.get(f"{V2}/requests.json")).json()]
    assert listed == numbers[:0:-1]


async def test_status_notes_agency_and_expected_time_follow_the_ticket(
    client: httpx.AsyncClient, key: str, act: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    number = (await file(client, request_form(key))).json()[0]["service_request_id"]
    tid = ticket_id(number)

    async def read() -> dict[str, Any]:
        return dict((await client.get(f"{V2}/requests/{number}.json")).json()[0])

    dispatched = await act("dispatcher", tid, "dispatch", department_code="NH-CG")
    now = await read()
    assert (now["status"], now["status_notes"]) == (
        "open",
        "dispatched to 南海区城市管理和综合执法局",
    )
    assert now["agency_responsible"] == "南海区城市管理和综合执法局"
    assert now["expected_datetime"] == "2026-11-23T14:00:00+08:00"  # 4 hours
    assert dispatched["deadline_at"].startswith("2026-11-23T06:00:00")

    await act("handler", tid, "claim")
    await act("handler", tid, "feedback", note="已清运完毕，现场照片见附件")
    now = await read()
    assert (now["status"], now["status_notes"]) == ("open", "handled; waiting to be checked")
    assert now["expected_datetime"] is None
    await act("dispatcher", tid, "verify", passed=True)
    now = await read()
    assert (now["status"], now["status_notes"]) == ("closed", "resolved")
    assert "已清运" not in str(now)  # staff notes stay inside


async def test_rejected_and_merged_requests_are_closed_with_a_public_note(
    client: httpx.AsyncClient, key: str, act: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    first = (await file(client, request_form(key))).json()[0]["service_request_id"]
    second = (await file(client, request_form(key))).json()[0]["service_request_id"]
    third = (await file(client, request_form(key))).json()[0]["service_request_id"]
    await act(
        "dispatcher", ticket_id(second), "merge", duplicate_of=ticket_id(first), note="同一处垃圾"
    )
    await act("dispatcher", ticket_id(third), "reject", note="举报人张先生系恶意投诉")
    merged = (await client.get(f"{V2}/requests/{second}.json")).json()[0]
    assert (merged["status"], merged["status_notes"]) == ("closed", f"a duplicate of {first}")
    rejected = (await client.get(f"{V2}/requests/{third}.json")).json()[0]
    assert (rejected["status"], rejected["status_notes"]) == ("closed", "not accepted as a case")
    assert "恶意" not in str(rejected)

    open_only = (await client.get(f"{V2}/requests.json?status=open")).json()
    assert [r["service_request_id"] for r in open_only] == [first]
    closed = (await client.get(f"{V2}/requests.json?status=closed")).json()
    assert {r["service_request_id"] for r in closed} == {second, third}
    both = (await client.get(f"{V2}/requests.json?status=open,closed")).json()
    assert len(both) == 3


async def test_updates_tell_a_request_s_progress_in_order(
    client: httpx.AsyncClient,
    key: str,
    clock: FrozenClock,
    act: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    number = (await file(client, request_form(key))).json()[0]["service_request_id"]
    tid = ticket_id(number)
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("dispatcher", "dispatch", {"department_code": "NH-CG"}),
        ("handler", "claim", {}),
        ("handler", "feedback", {"note": "done"}),
        ("dispatcher", "verify", {"passed": False}),
        ("handler", "feedback", {"note": "really done"}),
        ("dispatcher", "verify", {"passed": True}),
    ]
    for user, action, body in steps:
        clock.advance(timedelta(minutes=10))
        await act(user, tid, action, **body)
    updates = (await client.get(f"{V2}/servicerequestupdates.json")).json()
    assert [u["status"] for u in updates] == [
        "action_scheduled",
        "in_progress",
        "in_progress",
        "in_progress",
        "in_progress",
        "fixed",
    ]
    assert {u["service_request_id"] for u in updates} == {number}
    assert updates[0]["description"] == "dispatched to 南海区城市管理和综合执法局"
    assert updates[3]["description"] == "checked and sent back for more work"
    assert updates[0]["updated_datetime"] == "2026-11-23T10:10:00+08:00"
    assert len({u["update_id"] for u in updates}) == 6

    later = await client.get(
        f"{V2}/servicerequestupdates.xml?start_date=2026-11-23T10:35:00%2B08:00"
        "&end_date=2026-11-23T11:00:00%2B08:00"
    )
    root = ElementTree.fromstring(later.content)
    assert root.tag == "service_requests_updates"
    assert [u.findtext("status") for u in root.findall("request_update")] == [
        "in_progress",  # 10:40 sent back, 10:50 handled again, 11:00 passed
        "in_progress",
        "fixed",
    ]


async def test_an_escalated_request_says_so(
    client: httpx.AsyncClient, key: str, act: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    number = (await file(client, request_form(key))).json()[0]["service_request_id"]
    await act("dispatcher", ticket_id(number), "escalate", note="需要街道协调")
    (update,) = (await client.get(f"{V2}/servicerequestupdates.json")).json()
    assert (update["status"], update["description"]) == (
        "investigating",
        "passed up to the town level",
    )


async def test_a_request_outside_every_grid_near_one_snaps_to_it(
    api: Api, client: httpx.AsyncClient, key: str
) -> None:
    just_outside = (IN_DL01_1[0] - 0.005 - 0.0002, IN_DL01_1[1])  # ~22 m south of DL01-1
    response = await file(client, request_form(key, at=just_outside))
    assert response.status_code == 201, response.text
    number = response.json()[0]["service_request_id"]
    ticket = (
        await client.get(f"/api/v1/tickets/{ticket_id(number)}", headers=await api.headers("admin"))
    ).json()
    assert ticket["grid_code"] == "DL01-1"


async def test_concurrent_filings_with_one_key_keep_to_its_limit(
    world: Database, settings: Settings, clock: FrozenClock, api: Api
) -> None:
    key = (await register(api))["api_key"]
    async with served(world, settings, clock, open311_requests_per_minute=3) as client:
        responses = await asyncio.gather(*(file(client, request_form(key)) for _ in range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 3, statuses
    assert set(statuses) <= {201, 429, 503}  # SQLite may answer "busy, try again"
    assert await count(world, Ticket) == 3


async def test_ids_override_the_date_range_and_bare_dates_are_whole_days(
    client: httpx.AsyncClient, key: str
) -> None:
    number = (await file(client, request_form(key))).json()[0]["service_request_id"]
    named = await client.get(
        f"{V2}/requests.json?service_request_id={number}"
        "&start_date=2020-01-01T00:00:00Z&end_date=2026-01-01T00:00:00Z"
    )
    assert [r["service_request_id"] for r in named.json()] == [number]
    today = await client.get(f"{V2}/requests.json?start_date=2026-11-23&end_date=2026-11-23")
    assert [r["service_request_id"] for r in today.json()] == [number]
    unencoded_plus = await client.get(
        f"{V2}/requests.json?start_date=2026-11-23T09:00:00+08:00"
    )  # '+' arrives as a space
    assert [r["service_request_id"] for r in unencoded_plus.json()] == [number]


async def test_a_duplicate_of_a_ticket_the_channel_does_not_show_is_not_named(
    api: Api, client: httpx.AsyncClient, key: str, act: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    private = (
        await api.client.post(
            "/api/v1/events",
            json=event_body(category_code="dispute"),
            headers=await api.headers("worker"),
        )
    ).json()
    number = (await file(client, request_form(key, service_code="dispute"))).json()[0][
        "service_request_id"
    ]
    await act("dispatcher", ticket_id(number), "merge", duplicate_of=private["id"], note="同一处")
    (read,) = (await client.get(f"{V2}/requests/{number}.json")).json()
    assert read["status_notes"] == "a duplicate of another request"
    assert private["number"] not in (await client.get(f"{V2}/servicerequestupdates.json")).text


def test_xml_drops_characters_it_cannot_carry() -> None:
    # The channel refuses them in a citizen's text and never shows a worker's, so only text
    # stored some other way could carry them.
    response = respond(Format.xml, "service_requests", [{"description": "垃圾\x0b堆放"}])
    root = ElementTree.fromstring(response.body)
    assert root.findtext("request/description") == "垃圾堆放"


async def test_a_wrong_method_says_which_are_allowed(client: httpx.AsyncClient) -> None:
    response = await client.delete(f"{V2}/requests.json")
    only_error(response, 405)
    assert "POST" in response.headers["allow"]


async def test_a_request_checked_on_site_then_reopened_stays_open_to_the_public(
    api: Api,
    client: httpx.AsyncClient,
    key: str,
    clock: FrozenClock,
    act: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    number = (await file(client, request_form(key) | CITIZEN)).json()[0]["service_request_id"]
    tid = ticket_id(number)
    await act("dispatcher", tid, "request_check")

    (checking,) = (await client.get(f"{V2}/requests/{number}.json")).json()
    assert (checking["status"], checking["status_notes"]) == (
        "open",
        "received; being checked on site",
    )
    # the grid's worker who checks it reads what the citizen sent, but not who they are
    as_worker = await api.get(f"/api/v1/tickets/{tid}/open311", "worker")
    assert as_worker.status_code == 200
    assert as_worker.json()["contact"] == {}
    assert (await api.get(f"/api/v1/tickets/{tid}/open311", "dispatcher")).json()[
        "contact"
    ] == CITIZEN

    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("worker", "confirm", {"note": "现场属实"}),
        ("dispatcher", "dispatch", {"department_code": "NH-CG"}),
        ("handler", "claim", {}),
        ("handler", "feedback", {"note": "done"}),
        ("worker", "verify", {"passed": True}),
        ("dispatcher", "reopen", {"note": "回访不满意"}),
    ]
    for user, action, body in steps:
        clock.advance(timedelta(minutes=10))
        await act(user, tid, action, **body)

    (reopened,) = (await client.get(f"{V2}/requests/{number}.json")).json()
    assert reopened["status"] == "open"
    assert reopened["updated_datetime"] == "2026-11-23T11:00:00+08:00"
    updates = (await client.get(f"{V2}/servicerequestupdates.json")).json()
    assert [(u["status"], u["description"]) for u in updates][:2] == [
        ("investigating", "received; being checked on site"),
        ("investigating", "confirmed on site; waiting to be dispatched"),
    ]
    assert (updates[-2]["status"], updates[-1]["status"]) == ("fixed", "open")
    assert updates[-1]["description"] == "reopened: handled again"


# What the public channel shows of staff's text and citizens' places ---------------------------

WORKERS_TEXT = "李明巡查：王大爷家(文华路8号)门口垃圾，电话13900001111"


async def test_the_public_sees_a_worker_s_report_by_its_category_and_places_to_100_m(
    api: Api, client: httpx.AsyncClient, key: str
) -> None:
    worker = await api.headers("worker")
    patrol = await api.client.post(
        "/api/v1/events",
        json=event_body((23.03512, 113.10537), description=WORKERS_TEXT),
        headers=worker,
    )
    assert patrol.status_code == 201, patrol.text
    form = request_form(key, at=(23.03561, 113.10449), address_string="文华路12号3栋502室")
    citizen = (await file(client, form | CITIZEN)).json()[0]["service_request_id"]

    listed = {r["service_request_id"]: r for r in (await client.get(f"{V2}/requests.json")).json()}
    shown = listed[patrol.json()["number"]]
    assert shown["description"] == "暴露垃圾"  # the category's name, not the worker's text
    assert (shown["lat"], shown["long"]) == (23.035, 113.105)
    assert shown["address"] is None
    request = listed[citizen]
    assert request["description"] == "小区门口垃圾没人清理"  # the citizen's own words
    assert (request["lat"], request["long"]) == (23.036, 113.104)
    assert request["address"] == "南海区桂城街道东二社区第1网格"
    for fmt in ("json", "xml"):
        for path in (
            f"requests.{fmt}",
            f"requests/{patrol.json()['number']}.{fmt}",
            f"requests/{citizen}.{fmt}",
            f"servicerequestupdates.{fmt}",
        ):
            text = (await client.get(f"{V2}/{path}")).text
            for secret in ("李明", "13900001111", "文华路", "502", "23.03512", "113.10449"):
                assert secret not in text, (path, secret)

    # Staff still see exactly what was reported.
    dispatcher = await api.headers("dispatcher")
    staff = await client.get(f"/api/v1/tickets/{ticket_id(citizen)}/open311", headers=dispatcher)
    assert staff.json()["address"] == "文华路12号3栋502室"
    exact = (await client.get(f"/api/v1/tickets/{ticket_id(citizen)}", headers=dispatcher)).json()
    assert (exact["lat"], exact["lon"]) == (23.03561, 113.10449)
    report = (await client.get(f"/api/v1/tickets/{patrol.json()['id']}", headers=dispatcher)).json()
    assert report["description"] == WORKERS_TEXT


async def _visibility(
    api: Api, tid: int, as_: str, hidden: bool, note: str | None = "涉及居民隐私"
) -> httpx.Response:
    body: dict[str, Any] = {"hidden": hidden} | ({"note": note} if note is not None else {})
    return await api.post(f"/api/v1/tickets/{tid}/public-visibility", as_, body)


async def test_a_dispatcher_hides_a_ticket_from_the_public_channel(
    api: Api, client: httpx.AsyncClient, key: str, clock: FrozenClock
) -> None:
    filed = (await file(client, request_form(key))).json()[0]
    number, token = filed["service_request_id"], filed["token"]
    tid = ticket_id(number)
    clock.advance(timedelta(minutes=5))
    await api.must(tid, "dispatch", "dispatcher", {"department_code": "NH-CG"})
    other = (await file(client, request_form(key))).json()[0]["service_request_id"]

    async def public() -> list[str]:
        paths = ("requests.json", "requests.xml", "servicerequestupdates.json")
        texts = [(await client.get(f"{V2}/{path}")).text for path in paths]
        assert other in texts[0] and other in texts[1]  # the other request is listed all along
        return texts

    assert all(number in text for text in await public())

    clock.advance(timedelta(minutes=5))
    hidden = await _visibility(api, tid, "dispatcher", True)
    assert hidden.status_code == 200, hidden.text
    assert hidden.json() == {
        "ticket_id": tid,
        "listed": True,
        "hidden": True,
        "public": False,
        "hidden_at": "2026-11-23T02:10:00Z",
        "hidden_by": "dispatcher",
        "note": "涉及居民隐私",
    }
    assert not any(number in text for text in await public())
    assert "was not found" in only_error(await client.get(f"{V2}/requests/{number}.json"), 404)
    assert (await client.get(f"{V2}/requests.json?service_request_id={number}")).json() == []
    assert only_error(await client.get(f"{V2}/tokens/{token}.json"), 404)
    history = await api.history(tid)
    assert (history[-1]["actor"], history[-1]["action"], history[-1]["note"]) == (
        "dispatcher",
        "hide_from_public",
        "涉及居民隐私",
    )
    assert history[-1]["from_status"] == history[-1]["to_status"] == "dispatched"

    # Asking again changes nothing; staff still see and handle the ticket.
    assert (await _visibility(api, tid, "town_dispatcher", True, "again")).json()["note"] == (
        "涉及居民隐私"
    )
    assert len(await api.history(tid)) == len(history)
    await api.must(tid, "claim", "handler")
    seen = await api.get(f"/api/v1/tickets/{tid}/public-visibility", "handler")
    assert (seen.status_code, seen.json()["hidden"]) == (200, True)

    shown = await _visibility(api, tid, "admin", False, "已脱敏，可公开")
    assert (shown.status_code, shown.json()["hidden"], shown.json()["public"]) == (200, False, True)
    assert all(number in text for text in await public())
    assert [(h["actor"], h["action"], h["note"]) for h in (await api.history(tid))[-1:]] == [
        ("admin", "show_to_public", "已脱敏，可公开")
    ]


async def test_only_dispatchers_in_scope_and_admins_hide_tickets(api: Api) -> None:
    ticket = await api.ticket_in("dispatched")  # the worker's report of a public category
    tid = ticket["id"]
    for user in ("worker", "handler", "supervisor"):  # each sees the ticket
        response = await _visibility(api, tid, user, True)
        assert response.status_code == 403, (user, response.text)
    for user in ("dl_dispatcher", "worker2", "xf_handler", "dl_supervisor"):
        response = await _visibility(api, tid, user, True)
        assert response.status_code == 404, (user, response.text)
    assert (await _visibility(api, tid, "dispatcher", True, note=None)).status_code == 422
    assert (await _visibility(api, tid, "dispatcher", True, note="")).status_code == 422
    assert (await _visibility(api, 10**30, "dispatcher", True)).status_code in (404, 422)
    assert len(await api.history(tid)) == 2  # the report and the dispatch: nothing hidden yet
    assert (await _visibility(api, tid, "district_dispatcher", True)).status_code == 200
    listed = await api.client.get(f"{V2}/requests.json")
    assert ticket["number"] not in listed.text


async def test_a_key_in_the_url_of_a_post_is_not_taken(client: httpx.AsyncClient, key: str) -> None:
    """The specification puts the key in the POST's form; a URL's query is written to logs."""
    form = request_form(key)
    del form["api_key"]
    response = await client.post(f"{V2}/requests.json?api_key={key}", data=form)
    assert only_error(response, 403)


async def test_citizens_contact_details_are_for_dispatchers_and_admins_only(
    api: Api, client: httpx.AsyncClient, key: str
) -> None:
    number = (await file(client, request_form(key) | CITIZEN)).json()[0]["service_request_id"]
    tid = ticket_id(number)
    await api.must(tid, "request_check", "dispatcher")  # the grid's worker now sees it
    await api.must(tid, "dispatch", "dispatcher", {"department_code": "NH-CG"})  # and handler
    await api.must(tid, "urge", "supervisor", {"note": "请尽快"})

    contact = {}
    for user in ("admin", "dispatcher", "town_dispatcher", "supervisor", "handler"):
        response = await api.get(f"/api/v1/tickets/{tid}/open311", user)
        assert response.status_code == 200, user
        contact[user] = response.json()["contact"]

    assert contact == {
        "admin": CITIZEN,
        "dispatcher": CITIZEN,
        "town_dispatcher": CITIZEN,
        "supervisor": {},
        "handler": {},
    }
