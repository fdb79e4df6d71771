"""The web console of the dispatch centre and supervisors, under `/console`.

One page and its scripts, with no build step: the console calls the same `/api/v1` as every
client, with the signed-in user's token, so it has the same permissions. Leaflet and Chart.js
are vendored under `static/vendor` (command centres often run on closed networks). Besides the
page, the console has its settings and a stream of server-sent events that tells an open page
when tickets have changed, so that queues and figures update without reloading. EventSource
cannot send headers, so the stream is opened with a stream ticket in its URL instead of the
access token (which would then sit in access logs and the browser's history): signed like a
token, but good for a minute and for nothing but opening the stream.
"""

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import jwt
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select

from app.auth.models import Role, User
from app.auth.security import ALGORITHM, MAX_TOKEN_LENGTH
from app.config import Settings
from app.console.changes import ChangeFeed
from app.db import Database
from app.deps import CurrentUser
from app.errors import Forbidden, Unauthorized

STATIC = Path(__file__).parent / "static"
router = APIRouter(prefix="/console", include_in_schema=False)

STREAM_TICKET_LIFETIME = timedelta(seconds=60)
STREAM_PURPOSE = "stream"


@router.get("")
@router.get("/")
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/config.json")
async def config(request: Request) -> dict[str, Any]:
    """The console's settings, and today's local date by the service's clock (the default
    period of the dashboard)."""
    settings: Settings = request.app.state.settings
    now = request.app.state.clock.now()
    return {
        "map_tiles_url": settings.map_tiles_url,
        "map_attribution": settings.map_attribution,
        "timezone": settings.timezone,
        "today": now.astimezone(ZoneInfo(settings.timezone)).date().isoformat(),
    }


class StreamTicketOut(BaseModel):
    ticket: str
    expires_in: int


def _staff_only(user: User) -> None:
    if user.role == Role.grid_worker:
        raise Forbidden("the console is for the dispatch centre, handlers and supervisors")


def issue_stream_ticket(secret: str, user: User, now: datetime) -> str:
    """A ticket opening the console's stream as `user`, and nothing else: its `typ` and
    `purpose` are not an access token's, which the API alone accepts."""
    payload = {
        "sub": user.username,
        "gen": user.token_generation,
        "typ": "stream_ticket",
        "purpose": STREAM_PURPOSE,
        "jti": secrets.token_urlsafe(12),  # each ticket its own, even within a second
        "iat": int(now.timestamp()),
        "exp": int((now + STREAM_TICKET_LIFETIME).timestamp()),
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


async def _ticket_holder(request: Request, ticket: str) -> User:
    """The user a valid, unexpired stream ticket was issued to, still active and with no
    revocation since (their token generation); else 401."""
    state = request.app.state
    refused = Unauthorized("the stream ticket is invalid or has expired")
    if len(ticket) > MAX_TOKEN_LENGTH:
        raise refused
    try:
        payload = jwt.decode(
            ticket,
            state.settings.secret_key,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "gen", "exp", "purpose"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise refused from exc
    # Expiry by the service clock, not the host's, as for access tokens.
    if payload["purpose"] != STREAM_PURPOSE or payload["exp"] <= state.clock.now().timestamp():
        raise refused
    database: Database = state.database
    async with database.sessions() as session:
        user = await session.scalar(select(User).where(User.username == str(payload["sub"])))
    if user is None or not user.is_active or user.token_generation != payload["gen"]:
        raise refused
    return user


@router.post("/stream-ticket")
async def stream_ticket(request: Request, user: CurrentUser) -> StreamTicketOut:
    """A stream ticket for the signed-in user (by their bearer token), good for a minute: the
    page asks for a new one before each connection of the stream."""
    _staff_only(user)
    ticket = issue_stream_ticket(
        request.app.state.settings.secret_key, user, request.app.state.clock.now()
    )
    return StreamTicketOut(ticket=ticket, expires_in=int(STREAM_TICKET_LIFETIME.total_seconds()))


@router.get("/stream")
async def stream(
    request: Request, ticket: Annotated[str, Query(max_length=MAX_TOKEN_LENGTH)]
) -> StreamingResponse:
    """`event: tickets` whenever a ticket has changed anywhere (every change writes a history
    row, whose id is the event's; the process learns of it from its `ChangeFeed`), and at the
    start unless the browser reconnects having seen the newest (`Last-Event-ID`); the page
    then reloads what it shows through the API, in its own scope. Opened with a stream ticket
    (`POST /console/stream-ticket`), never an access token. The stream ends after
    `console_stream_seconds` and the page reconnects with a new ticket. Staff only: the phone
    app of grid workers has no use for it."""
    settings: Settings = request.app.state.settings
    changes: ChangeFeed = request.app.state.changes
    user = await _ticket_holder(request, ticket)  # 401 as for any API call
    _staff_only(user)
    last_seen = request.headers.get("last-event-id", "")

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        loop = asyncio.get_running_loop()
        ends = loop.time() + settings.console_stream_seconds
        seen = int(last_seen) if last_seen.isdecimal() else -1
        latest = await changes.refresh()
        while True:
            if latest != seen:
                seen = latest
                yield f"id: {latest}\nevent: tickets\ndata: {latest}\n\n"
            left = ends - loop.time()
            if left <= 0 or await request.is_disconnected():
                return
            latest = await changes.after(seen, min(left, settings.console_check_seconds))

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
