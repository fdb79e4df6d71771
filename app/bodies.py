"""Request bodies read with a size limit, whether or not the client declared their length."""

from starlette.requests import Request
from starlette.types import Message

from app.errors import PayloadTooLarge


def limited(request: Request, max_bytes: int, refusal: str) -> Request:
    """The request, whose body refuses with 413 as soon as it passes `max_bytes`: at once when
    its Content-Length says so, else when a chunk takes it over while being read."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(refusal)
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise PayloadTooLarge(refusal)
        return message

    return Request(request.scope, receive)
