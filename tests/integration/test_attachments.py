"""Photos: checked by content, stripped of metadata, served only to who may see the ticket."""

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from PIL import Image

from app.attachments.models import Attachment
from app.config import Settings
from app.db import Database
from tests.helpers import DISPATCH, Api, count, event_body


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 32), **save: Any) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt, **save)
    return out.getvalue()


async def upload(api: Api, data: bytes, name: str = "photo.jpg", as_: str = "worker") -> Any:
    headers = await api.headers(as_)
    files = {"file": (name, data, "image/jpeg")}
    return await api.client.post("/api/v1/attachments", headers=headers, files=files)


async def test_a_png_named_jpg_is_stored_as_png(api: Api) -> None:
    response = await upload(api, image_bytes("PNG"), "photo.jpg")

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["media_type"], body["width"], body["height"]) == ("image/png", 64, 32)
    served = await api.get(body["url"], "worker")
    assert served.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(served.content)).format == "PNG"
    thumb = await api.get(body["thumbnail_url"], "worker")
    assert Image.open(io.BytesIO(thumb.content)).format == "JPEG"


async def test_text_named_jpg_is_refused_and_nothing_stored(api: Api, world: Database) -> None:
    response = await upload(api, b"just some text, not a photo\n" * 10, "photo.jpg")

    assert response.status_code == 415
    assert response.json()["type"].endswith("unsupported-media-type")
    assert await count(world, Attachment) == 0


async def test_gps_and_orientation(api: Api) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[2] = (23.0, 2.0, 0.0)
    data = image_bytes("JPEG", (80, 40), exif=exif.tobytes())
    assert Image.open(io.BytesIO(data)).getexif()[0x0112] == 6

    body = (await upload(api, data)).json()
    served = Image.open(io.BytesIO((await api.get(body["url"], "worker")).content))

    assert served.size == (40, 80) and (body["width"], body["height"]) == (40, 80)
    assert not served.getexif() and "exif" not in served.info


async def test_an_oversized_file_is_refused_before_it_is_read(
    api: Api, settings: Settings, world: Database
) -> None:
    settings.attachment_max_bytes = 4096
    big = image_bytes("PNG", (600, 600)) + b"\0" * 100_000

    response = await upload(api, big)
    # Within what multipart framing may add, so read, and refused once past the limit.
    slightly_big = await upload(api, image_bytes("PNG", (10, 10)) + b"\0" * 8000)

    assert response.status_code == 413 and slightly_big.status_code == 413
    assert await count(world, Attachment) == 0


async def test_an_upload_without_a_length_stops_being_read_past_the_limit(
    api: Api, settings: Settings, world: Database
) -> None:
    settings.attachment_max_bytes = 4096
    boundary = "gridwork-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    sent = []

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: sent chunk by chunk
        yield head + image_bytes("PNG", (10, 10))
        for _ in range(1000):
            sent.append(1)
            yield b"\0" * 65536

    response = await api.client.post(
        "/api/v1/attachments",
        content=chunked(),
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            **await api.headers("worker"),
        },
    )

    assert response.status_code == 413
    assert len(sent) < 10  # 64 MB offered, about 128 KB read
    assert await count(world, Attachment) == 0


async def test_photos_follow_their_ticket(api: Api) -> None:
    photo = (await upload(api, image_bytes("JPEG"))).json()
    assert (await api.get(photo["url"], "dispatcher")).status_code == 404  # not on a ticket yet

    ticket = await api.report(attachment_ids=[photo["id"]])
    tid = ticket["id"]
    photos = (await api.get(f"/api/v1/tickets/{tid}/attachments", "dispatcher")).json()

    assert [(p["id"], p["stage"], p["ticket_id"]) for p in photos] == [(photo["id"], "report", tid)]
    assert (await api.get(photo["url"], "dispatcher")).status_code == 200
    assert (await api.get(photo["url"], "worker2")).status_code == 404  # another town's worker
    assert (await api.get(photo["thumbnail_url"], "dl_dispatcher")).status_code == 404

    reused = await api.post("/api/v1/events", "worker", event_body(attachment_ids=[photo["id"]]))
    assert reused.status_code == 422 and "belongs to a ticket" in reused.text


async def test_feedback_photos_and_someone_elses_photo(api: Api) -> None:
    tid = (await api.report())["id"]
    await api.must(tid, *DISPATCH)
    await api.must(tid, "claim", "handler")
    workers_photo = (await upload(api, image_bytes("WEBP"), "after.webp")).json()
    refused = await api.act(
        tid, "feedback", "handler", {"note": "已清理", "attachment_ids": [workers_photo["id"]]}
    )
    assert refused.status_code == 422 and "does not exist" in refused.text

    after = (await upload(api, image_bytes("WEBP"), "after.webp", as_="handler")).json()
    await api.must(tid, "feedback", "handler", {"note": "已清理", "attachment_ids": [after["id"]]})

    checked = (await upload(api, image_bytes("JPEG"), "checked.jpg")).json()
    await api.must(tid, "verify", "worker", {"passed": True, "attachment_ids": [checked["id"]]})

    photos = (await api.get(f"/api/v1/tickets/{tid}/attachments", "worker")).json()
    assert [(p["stage"], p["media_type"]) for p in photos] == [
        ("feedback", "image/webp"),
        ("verify", "image/jpeg"),
    ]


@pytest.mark.parametrize("path", ["/api/v1/attachments/nope", "/api/v1/attachments/nope/thumbnail"])
async def test_unknown_photo(api: Api, path: str) -> None:
    assert (await api.get(path, "worker")).status_code == 404


async def test_upload_without_a_file(api: Api) -> None:
    headers = await api.headers("worker")
    response = await api.client.post(
        "/api/v1/attachments", headers=headers, data={"note": "x"}, files={"other": ("a", b"x")}
    )
    assert response.status_code == 422


async def test_photos_of_a_check_on_site_and_of_an_assisting_part(api: Api) -> None:
    tid = (await api.report())["id"]
    await api.must(tid, "request_check", "dispatcher")
    on_site = (await upload(api, image_bytes("JPEG"), "site.jpg")).json()
    await api.must(tid, "confirm", "worker", {"attachment_ids": [on_site["id"]]})
    body = {"department_code": "NH-CG", "assisting_department_codes": ["NH-SZ"]}
    await api.must(tid, "dispatch", "dispatcher", body)
    pipes = (await upload(api, image_bytes("PNG"), "pipes.png", as_="sz_handler")).json()
    await api.must(tid, "assist", "sz_handler", {"note": "已疏通", "attachment_ids": [pipes["id"]]})

    photos = (await api.get(f"/api/v1/tickets/{tid}/attachments", "sz_handler")).json()

    assert [(p["stage"], p["media_type"]) for p in photos] == [
        ("check", "image/jpeg"),
        ("assist", "image/png"),
    ]
