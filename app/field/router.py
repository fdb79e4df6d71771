"""The grid worker's phone app, under `/field/`.

A page, plain ES modules and a stylesheet, with no build step; Leaflet is vendored under
`static/vendor`. The app calls the same `/api/v1` as every client. Besides the static files
(`/field/static/`, compressed on the way), this serves the few things that must sit at the
app's own scope: the page, the web app manifest, the service worker (whose cache name and list
of files to keep are filled in here from the files themselves, so that every change of a file
makes phones fetch the new version once, and nothing else), and the app's settings.

The app itself (static/): app.js (screens), outbox.js (everything sent, kept in IndexedDB until
the server has it), api.js (tokens and calls), patrol.js (clock-in and track), i18n.js.
"""

import hashlib
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware

from app.config import Settings

STATIC = Path(__file__).parent / "static"
PREFIX = "/field"
router = APIRouter(prefix=PREFIX, include_in_schema=False)
static_files = GZipMiddleware(StaticFiles(directory=STATIC), minimum_size=1024)

NO_CACHE = {"Cache-Control": "no-cache"}
_SHELL_SKIP = {"index.html", "manifest.webmanifest", "LICENSE"}  # served at the app's scope


def _shell() -> tuple[str, list[str]]:
    """The version of the app (a digest of every static file) and the URLs of its shell."""
    files = sorted(p for p in STATIC.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(STATIC).as_posix().encode())
        digest.update(path.read_bytes())
    urls = [f"{PREFIX}/", f"{PREFIX}/manifest.webmanifest"]
    urls += [
        f"{PREFIX}/static/{p.relative_to(STATIC).as_posix()}"
        for p in files
        if p.name not in _SHELL_SKIP
    ]
    return digest.hexdigest()[:16], urls


VERSION, SHELL = _shell()
SERVICE_WORKER = (
    (Path(__file__).parent / "sw.js")
    .read_text(encoding="utf-8")
    .replace('"__VERSION__"', json.dumps(VERSION))
    .replace("__SHELL__", json.dumps(SHELL))
)


@router.get("")
async def bare() -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/", status_code=308)


@router.get("/")
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=NO_CACHE)


@router.get("/manifest.webmanifest")
async def manifest() -> FileResponse:
    return FileResponse(
        STATIC / "manifest.webmanifest", media_type="application/manifest+json", headers=NO_CACHE
    )


@router.get("/sw.js")
async def service_worker() -> Response:
    """The service worker, at the app's scope (`/field/`), never cached by HTTP: the browser
    compares it byte for byte to learn of a new version."""
    return Response(SERVICE_WORKER, media_type="text/javascript", headers=NO_CACHE)


@router.get("/config.json")
async def config(request: Request) -> dict[str, Any]:
    """The app's settings: the map tiles (none by default: the grid on a blank background)
    and the service's time zone, with today's date by its clock."""
    settings: Settings = request.app.state.settings
    now = request.app.state.clock.now()
    return {
        "map_tiles_url": settings.map_tiles_url,
        "map_attribution": settings.map_attribution,
        "timezone": settings.timezone,
        "today": now.astimezone(ZoneInfo(settings.timezone)).date().isoformat(),
        "version": VERSION,
    }
