import asyncio
import functools
import gc
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.attachments.router import router as attachments_router
from app.attachments.storage import LocalStorage
from app.auth.router import router as auth_router
from app.auth.service import ensure_bootstrap_admin
from app.bodies import BodyLimit
from app.clock import Clock, SystemClock
from app.config import Settings, get_settings
from app.console.changes import ChangeFeed
from app.console.router import STATIC as CONSOLE_STATIC
from app.console.router import router as console_router
from app.db import UNAVAILABLE_SQLSTATES, Database
from app.docs_assets import install as install_api_docs
from app.errors import AppError, Conflict, Invalid, ServiceUnavailable, StaleVersion
from app.field.router import router as field_router
from app.field.router import static_files as field_static
from app.notifications.router import router as webhooks_router
from app.observability import (
    REQUEST_ID_HEADER,
    RequestContext,
    exposition,
    replica_figures,
    request_id,
    ticket_figures,
)
from app.open311.formats import error_response as open311_error
from app.open311.router import admin_router as open311_admin_router
from app.open311.router import gateway_router as open311_router
from app.open311.router import staff_router as open311_staff_router
from app.orgs.router import router as orgs_router
from app.patrol.router import router as patrol_router
from app.stats.router import router as stats_router
from app.tickets.router import router as tickets_router
from app.timing.router import router as calendar_router
from app.worker import run_worker

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    type_: str = "about:blank",
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    body.update(extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def render_app_error(error: AppError) -> JSONResponse:
    return problem(
        error.status,
        error.title,
        error.detail,
        error.type,
        error.errors,
        error.headers,
        **error.extensions,
    )


# Open311 clients expect the GeoReport v2 error list and its status codes instead of problem
# details: no 422 (a bad field is a 400) and no 401 (a bad key is a 403).
OPEN311_PATH = "/open311/"
OPEN311_STATUS = {422: 400, 401: 403}


Handler = Callable[[Request, Any], Awaitable[Response]]
H = TypeVar("H", bound=Handler)


def _also_for_open311(handler: Handler) -> Handler:
    """The handler, with its problem re-rendered as GeoReport v2 errors on the Open311 paths."""

    @functools.wraps(handler)
    async def handle(request: Request, exc: Any) -> Response:
        response = await handler(request, exc)
        if not request.url.path.startswith(OPEN311_PATH):
            return response
        detail = json.loads(bytes(response.body))["detail"]
        status = OPEN311_STATUS.get(response.status_code, response.status_code)
        kept = {k: v for k, v in response.headers.items() if k.lower() in ("retry-after", "allow")}
        return open311_error(request.url.path, status, detail, kept)

    return handle


def _install_error_handlers(app: FastAPI) -> None:
    def exception_handler(kind: type[Exception]) -> Callable[[H], H]:
        def register(handler: H) -> H:
            app.add_exception_handler(kind, _also_for_open311(handler))
            return handler

        return register

    @exception_handler(AppError)
    async def app_error(_: Request, exc: AppError) -> JSONResponse:
        return render_app_error(exc)

    @exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        return problem(422, "Invalid request", detail, "/problems/validation-error", errors)

    @exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        return problem(exc.status_code, title, str(exc.detail), headers=exc.headers)

    @exception_handler(StaleDataError)
    async def stale(_: Request, exc: StaleDataError) -> JSONResponse:
        return render_app_error(
            StaleVersion("the ticket was changed by someone else at the same time; reload it")
        )

    @exception_handler(IntegrityError)
    async def integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity error: %s", exc.orig)
        return render_app_error(Conflict("the change conflicts with data stored meanwhile"))

    @exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        sqlstate = str(getattr(exc.orig, "sqlstate", ""))
        if sqlstate.startswith("22"):  # data exception
            return render_app_error(
                Invalid("a value cannot be stored: out of range or with characters not allowed")
            )
        if sqlstate.startswith("40"):  # a deadlock or serialization failure: rolled back
            log.info("transaction rolled back by the database: %s", exc.orig)
            return render_app_error(
                Conflict("the change collided with another made at the same moment; try again")
            )
        unavailable = (
            exc.connection_invalidated
            or sqlstate.startswith(UNAVAILABLE_SQLSTATES)
            or "locked" in str(exc.orig)  # SQLite busy past its timeout
        )
        if not unavailable:
            return await unexpected(request, exc)
        log.warning("database unavailable: %s", exc.orig)
        error = ServiceUnavailable("the database is unavailable; try again shortly")
        error.headers = {"Retry-After": "5"}
        return render_app_error(error)

    @exception_handler(OverflowError)
    async def overflow(_: Request, exc: OverflowError) -> JSONResponse:
        # SQLite refuses integers beyond 64 bits this way (PostgreSQL with SQLSTATE 22003).
        return render_app_error(Invalid("a number is out of range"))

    @exception_handler(ConnectionError)
    async def connection_refused(_: Request, exc: ConnectionError) -> JSONResponse:
        log.warning("database unreachable: %s", exc)
        error = ServiceUnavailable("the database is unreachable; try again shortly")
        error.headers = {"Retry-After": "5"}
        return render_app_error(error)

    @exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        current = request_id.get()
        return problem(
            500,
            "Internal error",
            "an unexpected error occurred; it has been logged",
            headers={REQUEST_ID_HEADER: current} if current else None,
        )


def _tiles_source(url: str) -> str:
    """The CSP source of the map tiles' server (`https://*.tile.example.org` for a `{s}`
    subdomain), or "" for none or the service's own."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return ""
    host = re.sub(r"^\{[^}]*\}\.", "*.", parts.netloc.rsplit("@", 1)[-1])
    if not re.fullmatch(r"[\w.*:\[\]-]+", host):
        return f"{parts.scheme}:"  # a placeholder elsewhere in the host: its scheme
    return f"{parts.scheme}://{host}"


def content_security_policies(settings: Settings, docs_scripts: list[str]) -> list[tuple[str, str]]:
    """The pages' policies by path prefix: no inline script (the console and the field app are
    ES modules; the docs' one inline script by its hash), nothing from elsewhere but the map
    tiles, never in a frame."""
    common = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'"
    common += "; frame-ancestors 'none'"
    # Leaflet draws with data: images; photos are shown from blob: URLs.
    maps = f"img-src 'self' data: blob: {_tiles_source(settings.map_tiles_url)}".rstrip()
    console = f"{common}; script-src 'self'; style-src 'self'; {maps}; connect-src 'self'"
    field = f"{console}; worker-src 'self'; manifest-src 'self'"  # its service worker
    docs = (  # both render with inline styles; ReDoc searches in a worker from a blob: URL
        f"{common}; script-src 'self' {' '.join(docs_scripts)}; style-src 'self' 'unsafe-inline'"
        "; img-src 'self' data:; connect-src 'self'; worker-src blob:"
    )
    return [("/console", console), ("/field", field), ("/docs", docs), ("/redoc", docs)]


class SecurityHeaders:
    """`X-Content-Type-Options: nosniff` on every response; on the pages of the console, the
    field app and the API docs, and on their files, also their Content-Security-Policy, a
    referrer policy (`strict-origin`: a tile server may want to know the site, never the page)
    and no framing."""

    def __init__(self, app: ASGIApp, policies: Sequence[tuple[str, str]]) -> None:
        self.app = app
        self.policies = [(prefix, policy.encode()) for prefix, policy in policies]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        added = [(b"x-content-type-options", b"nosniff")]
        for prefix, policy in self.policies:
            if path == prefix or path.startswith(f"{prefix}/"):
                added += [
                    (b"content-security-policy", policy),
                    (b"referrer-policy", b"strict-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                break

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *added]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    owns_database = database is None
    database = database or Database.for_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with database.sessions() as session:
            try:
                if await ensure_bootstrap_admin(session, settings, app.state.clock.now()):
                    await session.commit()
                    log.info("created the bootstrap admin")
            except IntegrityError:  # another process created it first
                await session.rollback()
        stop = asyncio.Event()
        tasks = []
        if database.replicas.replicas:
            await database.replicas.check()  # reads go to a replica from the first request
            every = settings.replica_check_seconds
            tasks.append(asyncio.create_task(database.replicas.watch(every, stop)))
        if settings.embedded_worker:
            tasks.append(asyncio.create_task(run_worker(database, settings, app.state.clock, stop)))
            log.info("running the scheduler inside the API process")
        yield
        stop.set()
        await asyncio.gather(*tasks)
        await app.state.changes.close()
        if owns_database:
            await database.dispose()

    app = FastAPI(
        title="Gridwork",
        version="1.0.0",
        summary="Work orders for grid-based city governance: report, dispatch, timed "
        "handling, feedback, verification, rating, escalation.",
        lifespan=lifespan,
        docs_url=None,  # served from the package below, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.changes = ChangeFeed(database, settings.console_check_seconds)
    app.state.clock = clock or SystemClock()
    app.state.storage = LocalStorage(settings.attachments_dir)
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, settings=lambda: app.state.settings)
    app.add_middleware(RequestContext)
    docs_scripts = install_api_docs(app)
    app.add_middleware(SecurityHeaders, policies=content_security_policies(settings, docs_scripts))
    app.include_router(auth_router)
    app.include_router(orgs_router)
    app.include_router(tickets_router)
    app.include_router(calendar_router)
    app.include_router(patrol_router)
    app.include_router(stats_router)
    app.include_router(webhooks_router, prefix="/api/v1")
    app.include_router(attachments_router)
    app.include_router(open311_admin_router)
    app.include_router(open311_router)
    app.include_router(open311_staff_router)
    app.include_router(console_router)
    app.mount("/console/static", StaticFiles(directory=CONSOLE_STATIC), name="console-static")
    app.include_router(field_router)
    app.mount("/field/static", field_static, name="field-static")

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics: request latency by route, open tickets by status, overdue open
        tickets, scheduler lag, and each replica's lag as this process measured it."""
        try:
            async with database.sessions() as session:
                figures = await ticket_figures(session, app.state.clock.now())
        except (DBAPIError, OSError) as exc:  # the request metrics matter most in an outage
            log.warning("metrics without ticket figures: %s", exc)
            figures = []
        figures += replica_figures(database.replicas)
        return Response(exposition(figures), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """The database answers."""
        try:
            async with database.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (DBAPIError, OSError) as exc:
            log.warning("readiness check failed: %s", exc)
            return problem(503, "Service unavailable", "the database is unreachable")
        return JSONResponse({"status": "ok"})

    return app


# A request's objects are freed by reference counting as it ends; a list page makes a few
# thousand that the collector would otherwise walk about once per request (700 by default).
GC_FIRST_GENERATION_THRESHOLD = 5000


def create_served_app() -> FastAPI:
    """The app of one `gridwork serve` process."""
    app = create_app()
    keep_start_up_out_of_collections()
    return app


def keep_start_up_out_of_collections() -> None:
    """What a serving process was built from (modules, routes, settings) lives as long as the
    process: it is frozen out of the garbage collector's passes, and a pass waits for more new
    objects. About 0.3-0.4 ms less of each request (`docs/benchmarks.md`)."""
    gc.freeze()
    _, *older = gc.get_threshold()
    gc.set_threshold(GC_FIRST_GENERATION_THRESHOLD, *older)
