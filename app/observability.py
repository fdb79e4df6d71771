"""What operators watch: one JSON log line per record carrying the request's id, an access line
per request, and Prometheus metrics at /metrics.

With several uvicorn workers, set PROMETHEUS_MULTIPROC_DIR to an empty directory so that the
metrics of all of them are added up (prometheus_client's multiprocess mode)."""

import json
import logging
import math
import os
import re
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.replicas import Replicas
from app.stats.measures import IS_OPEN
from app.tickets import deadlines
from app.tickets.machine import OPEN_STATUSES
from app.tickets.models import Ticket

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
REQUEST_ID_HEADER = "x-request-id"
_ACCEPTED_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_SECONDS = Histogram(
    "gridwork_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
access_log = logging.getLogger("gridwork.access")


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON, with the id of the request it belongs to."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (current := request_id.get()) is not None:
            line["request_id"] = current
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def logging_config(json_logs: bool) -> dict[str, Any]:
    """A dictConfig for the app, the access lines and uvicorn's own loggers."""
    formatter = (
        {"()": JsonFormatter}
        if json_logs
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )  # the request id and the access fields are in the JSON lines only
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    uvicorn_own = {"handlers": ["main"], "level": "INFO", "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"handlers": ["main"], "level": "INFO"},
        "loggers": {
            "uvicorn": uvicorn_own,
            "uvicorn.error": uvicorn_own,
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


class RequestContext:
    """Gives each request an id (the client's X-Request-ID when it is a sane one), returns it
    in the response, times the request into the histogram and writes its access line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        current = given if _ACCEPTED_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(current)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.encode(), current.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The 500 is sent by Starlette's outermost middleware, after this one: the id
            # stays set for its handler to log and return.
            self._record(scope, started, 500)
            raise
        self._record(scope, started, status)
        request_id.reset(token)

    @staticmethod
    def _record(scope: Scope, started: float, status: int) -> None:
        """The request's latency into the histogram, and its access line."""
        elapsed = time.perf_counter() - started
        route = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
        REQUEST_SECONDS.labels(method, route, str(status)).observe(elapsed)
        access_log.info(
            "%s %s %s",
            scope["method"],
            scope["path"],
            status,
            extra={
                "fields": {
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 1),
                }
            },
        )


class _Figures:
    """A collector of metric families computed beforehand."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self.families


async def ticket_figures(session: AsyncSession, now: datetime) -> list[GaugeMetricFamily]:
    """Open tickets by status, overdue open tickets and scheduler lag, read now."""
    by_status = GaugeMetricFamily(
        "gridwork_open_tickets", "Open tickets by status", labels=["status"]
    )
    counts = dict(
        (
            await session.execute(
                select(Ticket.status, func.count()).where(IS_OPEN).group_by(Ticket.status)
            )
        ).all()
    )
    for status in sorted(OPEN_STATUSES):
        by_status.add_metric([status], counts.get(status, 0))
    overdue = await session.scalar(
        select(func.count()).where(IS_OPEN, deadlines.overdue_clause(True, now))
    )
    oldest_due = await session.scalar(
        select(func.min(Ticket.alarm_at)).where(Ticket.alarm_at <= now)
    )
    lag = (now - oldest_due).total_seconds() if oldest_due else 0
    return [
        by_status,
        GaugeMetricFamily(
            "gridwork_overdue_open_tickets",
            "Open tickets that have missed a deadline",
            value=overdue or 0,
        ),
        GaugeMetricFamily(
            "gridwork_scheduler_lag_seconds",
            "How long the oldest due scheduler alarm has waited (0: none waits)",
            value=lag,
        ),
    ]


def replica_figures(replicas: Replicas) -> list[GaugeMetricFamily]:
    """Each replica's lag and whether this process reads it (none without replicas)."""
    if not replicas.replicas:
        return []
    lag = GaugeMetricFamily(
        "gridwork_replica_lag_seconds",
        "How far the replica's replay is behind the primary (NaN: unreachable, or not a standby)",
        labels=["replica"],
    )
    in_use = GaugeMetricFamily(
        "gridwork_replica_in_use",
        "1 when reads go to the replica, 0 when they fall back to the primary",
        labels=["replica"],
    )
    for name, seconds, used in replicas.figures():
        lag.add_metric([name], math.nan if seconds is None else seconds)
        in_use.add_metric([name], 1 if used else 0)
    return [lag, in_use]


def exposition(figures: list[GaugeMetricFamily]) -> bytes:
    """The metrics in Prometheus' text format: the request histogram (of every worker, in
    multiprocess mode) and the ticket figures."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        requests = CollectorRegistry()
        multiprocess.MultiProcessCollector(requests)
    else:
        requests = REGISTRY
    tickets = CollectorRegistry()
    tickets.register(_Figures(figures))
    return generate_latest(requests) + generate_latest(tickets)
