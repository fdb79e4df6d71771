"""Reference data kept in each process (`app/reference.py`): two API processes over one
database, one of them changing a category, the other seeing the change within its check
interval and not before."""

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import select, update

from app.config import Settings
from app.db import Database
from app.demo import DEMO_PASSWORD
from app.orgs.models import Category
from app.reference import ReferenceVersion
from tests.helpers import event_body

CHECK_SECONDS = 3.0
NEW_CATEGORY = {
    "code": "graffiti",
    "name": "乱涂乱画",
    "time_limit": {"value": 2, "unit": "working_days"},
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _serving(settings: Settings) -> Iterator[str]:
    """`gridwork serve` in a process of its own."""
    port = _free_port()
    env = os.environ | {
        "GRIDWORK_ENV": "test",
        "GRIDWORK_DATABASE_URL": settings.database_url,
        "GRIDWORK_SECRET_KEY": settings.secret_key,
        "GRIDWORK_REFERENCE_CHECK_SECONDS": str(CHECK_SECONDS),
        "GRIDWORK_ATTACHMENTS_DIR": settings.attachments_dir,
    }
    command = [str(Path(sys.executable).parent / "gridwork"), "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            assert time.monotonic() < deadline, "the server did not start within 30 s"
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _token(client: httpx.AsyncClient, url: str, username: str) -> dict[str, str]:
    form = {"username": username, "password": DEMO_PASSWORD}
    answer = await client.post(f"{url}/api/v1/auth/token", data=form)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def test_a_category_added_in_one_process_reaches_the_other_within_the_check(
    world: Database, settings: Settings
) -> None:
    with _serving(settings) as first, _serving(settings) as second:
        async with httpx.AsyncClient(timeout=10) as client:
            admin = await _token(client, first, "admin")
            worker = await _token(client, first, "worker")

            async def report(url: str, category: str) -> httpx.Response:
                body = event_body(category_code=category)
                return await client.post(f"{url}/api/v1/events", json=body, headers=worker)

            assert (await report(second, "garbage")).status_code == 201  # its copy, checked now
            added = await client.post(
                f"{first}/api/v1/categories", json=NEW_CATEGORY, headers=admin
            )
            assert added.status_code == 201, added.text
            added_at = time.monotonic()
            assert (await report(first, "graffiti")).status_code == 201  # the one that added it
            unknown = await report(second, "graffiti")
            assert unknown.status_code == 422, unknown.text  # within its check interval, as it was
            assert "graffiti" in unknown.json()["errors"][0]["msg"]

            while (answer := await report(second, "graffiti")).status_code != 201:
                assert answer.status_code == 422, answer.text
                assert time.monotonic() - added_at < CHECK_SECONDS + 2, "not seen after the check"
                await asyncio.sleep(0.1)  # another process's clock: no clock of ours to move


async def test_every_change_of_reference_data_bumps_the_version(world: Database) -> None:
    """Whoever changes it: here a statement the API never runs, outside the ORM's objects."""

    async def version() -> int:
        async with world.sessions() as session:
            return int(await session.scalar(select(ReferenceVersion.version)) or 0)

    before = await version()
    async with world.sessions() as session:
        await session.execute(update(Category).values(name=Category.name + "!"))
        await session.commit()
    assert await version() > before
    untouched = await version()
    async with world.sessions() as session:
        await session.execute(update(Category).values(name=Category.name + "?"))
        await session.rollback()
    assert await version() == untouched
