"""Request bodies read with a size limit, whether or not the client declared their length.

`BodyLimit` caps every request's body by route, before anything reads it and before
authentication: a declared Content-Length over the limit is answered 413 at once, without
running the app; a body that streams past it fails the app's read of it, and the client is
told 413. Either way in the form of the path's other errors (a problem document; GeoReport's
list on the Open311 channel).
"""

import json
from collections.abc import Callable

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.errors import PayloadTooLarge

KIB = 1024
# A JSON request of the API: the largest is a batch of 1,000 track points (about 100 KiB).
JSON_BODY_BYTES = 256 * KIB
# A GeoReport v2 request form (description, address, attributes, contact details).
OPEN311_FORM_BYTES = 64 * KIB
MULTIPART_OVERHEAD = 64 * KIB  # boundaries and part headers around an uploaded file


def body_limit(method: str, path: str, settings: Settings) -> int:
    """The most a request's body may hold, by route."""
    if method == "POST" and path == "/api/v1/attachments":
        return settings.attachment_max_bytes + MULTIPART_OVERHEAD
    if path.startswith("/open311/"):
        return OPEN311_FORM_BYTES
    return JSON_BODY_BYTES


def _declared_over(declared: str | None, max_bytes: int) -> bool:
    return declared is not None and declared.isdigit() and int(declared) > max_bytes


def _capped(receive: Receive, max_bytes: int, refusal: str) -> Receive:
    """`receive`, refusing (413) once the body passes `max_bytes`."""
    received = 0

    async def capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise PayloadTooLarge(refusal)
        return message

    return capped


def _refusal(max_bytes: int) -> str:
    return f"the request body may be at most {max_bytes:,} bytes here"


class BodyLimit:
    """ASGI middleware: every request body capped by `body_limit` (see the module)."""

    def __init__(self, app: ASGIApp, settings: Callable[[], Settings]) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = body_limit(scope["method"], scope["path"], self.settings())
        too_large = _too_large(scope["path"], _refusal(max_bytes))
        declared = next(
            (value.decode() for name, value in scope["headers"] if name == b"content-length"),
            None,
        )
        if _declared_over(declared, max_bytes):
            await too_large(scope, receive, send)
            return
        refused = False

        async def counted() -> Message:
            nonlocal refused
            try:
                return await capped()
            except PayloadTooLarge:
                refused = True
                raise

        async def answered(message: Message) -> None:
            # Whatever the app made of the refusal (FastAPI answers a failed body read with
            # 400), the client is told 413.
            if not refused:
                await send(message)
            elif message["type"] == "http.response.start":
                await too_large(scope, receive, send)

        capped = _capped(receive, max_bytes, _refusal(max_bytes))
        await self.app(scope, counted, answered)


def _too_large(path: str, refusal: str) -> Response:
    """413 in the form of the path's other errors."""
    body: object
    if path.startswith("/open311/"):
        body, media_type = [{"code": 413, "description": refusal}], "application/json"
    else:
        error = PayloadTooLarge(refusal)
        body = {"type": error.type, "title": error.title, "status": 413, "detail": refusal}
        media_type = "application/problem+json"
    headers = {"Connection": "close"}  # the rest of the body is not read
    return Response(json.dumps(body), 413, headers=headers, media_type=media_type)
