"""Open311 client libraries from PyPI, not ours, against the app served by uvicorn over real
HTTP: civicbot's GeoReport v2 client (JSON, including filing) and georeport (XML reads)."""

import asyncio
from collections.abc import Iterator

import pytest
from civicbot.http import HttpTransport, RateLimiter
from civicbot.open311 import Open311Client
from civicbot.registry import Endpoint
from georeport import GeoReport

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.open311 import clients
from tests.helpers import IN_GC02_1
from tests.live import LiveServer


@pytest.fixture
def live(world: Database, settings: Settings, clock: FrozenClock) -> Iterator[LiveServer]:
    server = LiveServer(settings, clock)
    yield server
    server.stop()


@pytest.fixture
async def api_key(world: Database, clock: FrozenClock) -> str:
    async with world.sessions() as session:
        _, key = await clients.register(session, "市民通", "admin", clock.now())
        await session.commit()
    return key


def civicbot_client(live: LiveServer) -> Open311Client:
    endpoint = Endpoint(id="gridwork", name="Gridwork", base_url=live.open311, write=True)
    transport = HttpTransport(timeout=10, rate_limiter=RateLimiter(min_interval=0))
    return Open311Client(endpoint, transport=transport)


async def test_civicbot_lists_services_files_a_request_and_reads_it_back(
    live: LiveServer, api_key: str
) -> None:
    client = civicbot_client(live)

    def session() -> tuple[list[dict[str, object]], dict[str, object], dict[str, object]]:
        services = client.list_services()
        # validate_remote fetches the definition and checks the answers before sending
        filed = client.create_request(
            "road_damage",
            dry_run=False,
            confirm="SEND",
            api_key=api_key,
            validate_remote=True,
            lat=IN_GC02_1[0],
            lng=IN_GC02_1[1],
            description="人行道地砖松动，老人差点绊倒",
            attributes={"size": "small", "blocking": "yes"},
            email="citizen@example.com",
        )
        (created,) = filed.response
        read = client.get_request(created["service_request_id"])
        assert read is not None
        return services, created, read

    services, created, read = await asyncio.to_thread(session)
    assert {s["service_code"] for s in services} >= {"garbage", "road_damage"}
    number = created["service_request_id"]
    assert read["service_request_id"] == number
    assert (read["status"], read["service_code"]) == ("open", "road_damage")
    assert read["description"] == "人行道地砖松动，老人差点绊倒"
    assert "citizen@example.com" not in str(read)

    by_token = await asyncio.to_thread(client.get_token, str(created["token"]))
    assert by_token == [{"service_request_id": number, "token": created["token"]}]
    listed = await asyncio.to_thread(client.list_requests, status="open")
    assert [r["service_request_id"] for r in listed] == [number]


async def test_georeport_reads_services_and_requests_as_xml(live: LiveServer, api_key: str) -> None:
    filer = civicbot_client(live)
    reader = GeoReport(live.open311, output_format="xml")

    def session() -> tuple[object, ...]:
        filed = filer.create_request(
            "garbage",
            dry_run=False,
            confirm="SEND",
            api_key=api_key,
            lat=IN_GC02_1[0],
            lng=IN_GC02_1[1],
            description="垃圾桶满溢",
        )
        number = filed.response[0]["service_request_id"]
        return (
            number,
            reader.get_service_list(),
            reader.get_service_definition("road_damage"),
            reader.get_service_requests(status="open"),
            reader.get_service_request(number),
        )

    number, services, definition, listed, single = await asyncio.to_thread(session)
    assert {s["service_code"] for s in services} >= {"garbage", "road_damage"}  # type: ignore[attr-defined]
    attributes = definition["attributes"]["attribute"]  # type: ignore[index]
    assert [a["code"] for a in attributes] == ["size", "blocking"]
    # xmltodict gives a single child as a dict, not a one-item list
    assert listed["service_request_id"] == number  # type: ignore[index]
    assert single["service_request_id"] == number  # type: ignore[index]
    assert single["status"] == "open"  # type: ignore[index]
    assert single["service_name"] == "暴露垃圾"  # type: ignore[index]


async def test_a_library_sees_the_spec_errors(live: LiveServer) -> None:
    client = civicbot_client(live)

    def refused() -> Exception:
        with pytest.raises(Exception) as caught:
            client.create_request(
                "garbage",
                dry_run=False,
                confirm="SEND",
                api_key="not-a-key",
                lat=IN_GC02_1[0],
                lng=IN_GC02_1[1],
            )
        return caught.value

    error = await asyncio.to_thread(refused)
    assert getattr(error, "status", None) == 403
    assert '"code":403' in getattr(error, "body", "")
