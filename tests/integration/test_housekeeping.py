"""The worker's housekeeping on an injected clock: citizens' contact details after their
retention period, photos never given to a ticket, expired refresh tokens; each purge run by
several workers at once."""

import asyncio
import io
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import func, select

from app.attachments.models import Attachment
from app.attachments.storage import LocalStorage
from app.auth.models import RefreshToken
from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.open311.models import Open311Request
from app.worker import Housekeeping, housekeeping_pass, run_worker
from tests.helpers import Api, count

V2 = "/open311/v2"
CITIZEN = {"first_name": "伟", "last_name": "张", "phone": "13800138000", "device_id": "d-7"}


async def housekeeping(
    world: Database, settings: Settings, now: datetime, workers: int = 1
) -> Housekeeping:
    """`workers` passes at once; the sum of what each purged."""
    storage = LocalStorage(settings.attachments_dir)
    reports = await asyncio.gather(
        *(housekeeping_pass(world, settings, storage, now) for _ in range(workers))
    )
    return Housekeeping(
        contacts_purged=sum(r.contacts_purged for r in reports),
        uploads_purged=sum(r.uploads_purged for r in reports),
        refresh_tokens_purged=sum(r.refresh_tokens_purged for r in reports),
    )


async def file_requests(api: Api, n: int) -> list[int]:
    created = await api.post("/api/v1/open311/clients", "admin", {"name": "市民通"})
    key = created.json()["api_key"]
    ids = []
    for _ in range(n):
        form = {"api_key": key, "service_code": "garbage", "lat": "23.035", "long": "113.105"}
        response = await api.client.post(f"{V2}/requests.json", data=form | CITIZEN)
        assert response.status_code == 201, response.text
        ids.append(int(response.json()[0]["service_request_id"].rsplit("-", 1)[1]))
    return ids


async def test_contact_details_are_purged_after_the_retention_period(
    api: Api, world: Database, settings: Settings, clock: FrozenClock
) -> None:
    first = await file_requests(api, 3)
    clock.advance(timedelta(days=10))
    (later,) = await file_requests(api, 1)

    # 180 days by default, from each request.
    nothing = await housekeeping(world, settings, clock.now() + timedelta(days=170))
    assert nothing.contacts_purged == 0
    staff_view = await api.get(f"/api/v1/tickets/{first[0]}/open311", "dispatcher")
    assert staff_view.json()["contact"] == CITIZEN

    at = clock.now() + timedelta(days=171)  # 181 days after the first three
    assert (await housekeeping(world, settings, at, workers=3)).contacts_purged == 3
    for tid in first:
        purged = (await api.get(f"/api/v1/tickets/{tid}/open311", "dispatcher")).json()
        assert purged["contact"] == {}
        assert purged["contact_purged_at"] == at.isoformat().replace("+00:00", "Z")
        assert (await api.get(f"/api/v1/tickets/{tid}", "dispatcher")).status_code == 200
    kept = (await api.get(f"/api/v1/tickets/{later}/open311", "dispatcher")).json()
    assert (kept["contact"], kept["contact_purged_at"]) == (CITIZEN, None)
    assert (await housekeeping(world, settings, at + timedelta(days=9))).contacts_purged == 0

    settings.contact_retention_days = 30
    assert (await housekeeping(world, settings, at)).contacts_purged == 1
    async with world.sessions() as session:
        left = await session.scalar(
            select(func.count()).where(Open311Request.contact_purged_at.is_(None))
        )
    assert left == 0


def photo(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (48, 32), colour).save(out, format="PNG")
    return out.getvalue()


async def upload(api: Api, data: bytes, as_: str = "worker") -> dict[str, Any]:
    files = {"file": ("photo.png", data, "image/png")}
    response = await api.client.post(
        "/api/v1/attachments", headers=await api.headers(as_), files=files
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def stored(settings: Settings, digest: str) -> Path:
    return Path(settings.attachments_dir) / digest[:2] / digest[2:4] / digest


def date_files(settings: Settings, at: datetime) -> None:
    """Gives every stored file the time `at`: the injected clock, not the machine's, says
    when photos were stored."""
    for path in Path(settings.attachments_dir).rglob("*"):
        if path.is_file():
            os.utime(path, (at.timestamp(), at.timestamp()))


def set_aside(settings: Settings) -> list[Path]:
    return list(Path(settings.attachments_dir).rglob("*.discarding.*"))


async def test_photos_never_attached_are_purged_and_shared_files_kept(
    api: Api, world: Database, settings: Settings, clock: FrozenClock
) -> None:
    lone = await upload(api, photo((200, 30, 30)))
    shared_unused = await upload(api, photo((30, 200, 30)))
    shared_used = await upload(api, photo((30, 200, 30)), as_="worker2")  # the same bytes
    assert shared_unused["sha256"] == shared_used["sha256"]
    await api.report(as_="worker2", at=(23.035, 113.145), attachment_ids=[shared_used["id"]])
    date_files(settings, clock.now())
    clock.advance(timedelta(hours=40))
    young = await upload(api, photo((30, 30, 200)))
    async with world.sessions() as session:
        thumbnails = dict(
            (await session.execute(select(Attachment.id, Attachment.thumbnail_sha256)))
            .tuples()
            .all()
        )

    at_47_hours = clock.now() + timedelta(hours=7)
    assert (await housekeeping(world, settings, at_47_hours)).uploads_purged == 0
    at_49_hours = clock.now() + timedelta(hours=9)  # 48 hours by default
    assert (await housekeeping(world, settings, at_49_hours, workers=3)).uploads_purged == 2

    async with world.sessions() as session:
        left = set(await session.scalars(select(Attachment.id)))
    assert left == {shared_used["id"], young["id"]}
    assert not stored(settings, lone["sha256"]).exists()
    assert not stored(settings, thumbnails[lone["id"]]).exists()
    for kept in (shared_used, young):  # the shared bytes are still used by another row
        assert stored(settings, kept["sha256"]).exists()
        assert stored(settings, thumbnails[kept["id"]]).exists()
    assert (await api.get(shared_used["url"], "worker2")).status_code == 200
    assert (await api.get(lone["url"], "worker")).status_code == 404
    assert not set_aside(settings)
    assert (await housekeeping(world, settings, at_49_hours)).uploads_purged == 0


async def test_bytes_stored_again_since_are_kept(
    api: Api, world: Database, settings: Settings, clock: FrozenClock
) -> None:
    """An upload of the same photo in flight has stored its bytes, not yet its row: the purge
    of an old row of the same bytes leaves the file."""
    old = await upload(api, photo((120, 120, 0)))
    date_files(settings, clock.now())
    path = stored(settings, old["sha256"])
    before = path.stat().st_mtime
    await LocalStorage(settings.attachments_dir).put(old["sha256"], b"the same bytes")
    assert path.stat().st_mtime != before  # storing again touches the file
    now = clock.now() + timedelta(days=3)
    os.utime(path, (now.timestamp(), now.timestamp()))  # ...at the time of the injected clock
    assert (await housekeeping(world, settings, now)).uploads_purged == 1
    assert await count(world, Attachment) == 0
    assert path.exists()


async def test_expired_refresh_tokens_are_purged(
    api: Api, world: Database, settings: Settings, clock: FrozenClock
) -> None:
    assert (await api.login("worker")).status_code == 200
    clock.advance(timedelta(days=20))
    assert (await api.login("dispatcher")).status_code == 200
    tokens = await count(world, RefreshToken)
    assert tokens == 2

    # Refresh tokens live 30 days by default.
    assert (await housekeeping(world, settings, clock.now())).refresh_tokens_purged == 0
    purged = await housekeeping(world, settings, clock.now() + timedelta(days=11), workers=2)
    assert purged.refresh_tokens_purged == 1
    async with world.sessions() as session:
        assert (await session.scalar(select(func.count()).select_from(RefreshToken))) == 1


async def test_the_worker_runs_the_housekeeping(
    api: Api, world: Database, settings: Settings, clock: FrozenClock
) -> None:
    await file_requests(api, 1)
    await upload(api, photo((1, 2, 3)))
    clock.advance(timedelta(days=200))
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(world, settings, clock, stop))
    async with world.sessions() as session:
        for _ in range(100):
            await asyncio.sleep(0.05)
            purged = await session.scalar(
                select(func.count()).where(Open311Request.contact_purged_at.is_not(None))
            )
            await session.rollback()
            if purged and not await session.scalar(select(func.count()).select_from(Attachment)):
                break
    stop.set()
    await asyncio.wait_for(worker, timeout=10)
    assert purged == 1
    assert await count(world, Attachment) == 0


async def test_with_nothing_to_purge_housekeeping_changes_nothing(
    world: Database, settings: Settings, clock: FrozenClock
) -> None:
    assert await housekeeping(world, settings, clock.now(), workers=2) == Housekeeping()
