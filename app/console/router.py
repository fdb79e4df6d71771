"""The web console of the dispatch centre and supervisors, under `/console`.

One page and its scripts, with no build step: the console calls the same `/api/v1` as every
client, with the signed-in user's token, so it has the same permissions. Leaflet and Chart.js
are vendored under `static/vendor` (command centres often run on closed networks). Besides the
page, the console has its settings and a stream of server-sent events that tells an open page
when tickets have changed, so that queues and figures update without reloading.
"""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import func, select

from app.auth.models import Role
from app.config import Settings
from app.db import Database
from app.deps import get_current_user
from app.errors import Forbidden
from app.tickets.models import TicketHistory

STATIC = Path(__file__).parent / "static"
router = APIRouter(prefix="/console", include_in_schema=False)

_LATEST_CHANGE = select(func.max(TicketHistory.id))


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


@router.get("/stream")
async def stream(
    request: Request, token: Annotated[str, Query(max_length=2048)]
) -> StreamingResponse:
    """`event: tickets` whenever a ticket has changed anywhere (every change writes a history
    row, whose id is the event's), and at the start unless the browser reconnects having seen
    the newest (`Last-Event-ID`); the page then reloads what it shows through the API, in its
    own scope. EventSource cannot send headers, hence the token in the query. The stream ends
    after `console_stream_seconds` and the browser reconnects. Staff only: the phone app of
    grid workers has no use for it."""
    database: Database = request.app.state.database
    settings: Settings = request.app.state.settings
    async with database.sessions() as session:
        user = await get_current_user(request, session, token)  # 401 as for any API call
    if user.role == Role.grid_worker:
        raise Forbidden("the console is for the dispatch centre, handlers and supervisors")
    last_seen = request.headers.get("last-event-id", "")

    async def events() -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        loop = asyncio.get_running_loop()
        ends = loop.time() + settings.console_stream_seconds
        seen = int(last_seen) if last_seen.isdecimal() else -1
        while loop.time() < ends and not await request.is_disconnected():
            async with database.sessions() as session:
                latest = await session.scalar(_LATEST_CHANGE) or 0
            if latest != seen:
                seen = latest
                yield f"id: {latest}\nevent: tickets\ndata: {latest}\n\n"
            await asyncio.sleep(min(settings.console_check_seconds, ends - loop.time()))

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
