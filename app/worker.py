"""The background worker: scheduler passes and webhook deliveries on a fixed interval. Any
number may run at once (`gridwork worker`); `make run` runs one inside the API process."""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

import httpx

from app.clock import Clock
from app.config import Settings
from app.db import Database
from app.notifications.service import deliver_due, purge_delivered
from app.tickets.scheduler import run_pass

log = logging.getLogger(__name__)


async def _every(
    interval: float, stop: asyncio.Event, name: str, work: Callable[[], Awaitable[None]]
) -> None:
    """Runs `work` now and then every `interval` seconds until `stop`. A failed round (the
    database down, say) is logged and the next one tried: nothing it claimed was committed."""
    while not stop.is_set():
        try:
            await work()
        except Exception:
            log.exception("%s failed; retrying after the interval", name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def run_worker(
    database: Database, settings: Settings, clock: Clock, stop: asyncio.Event
) -> None:
    """The scheduler and webhook delivery as two loops, so a slow receiver never delays an
    escalation."""

    async def scheduler_round() -> None:
        report = await run_pass(database, settings, clock.now())
        if report.handled or report.failed:
            log.info(
                "scheduler: %s warned, %s escalated, %s overdue at the top level, %s failed",
                report.warned,
                report.escalated,
                report.overdue,
                report.failed,
            )

    async with httpx.AsyncClient(timeout=settings.webhook_timeout_seconds) as client:

        async def delivery_round() -> None:
            delivered, failed = await deliver_due(database, settings, client, clock.now())
            if delivered or failed:
                log.info("webhooks: %s delivered, %s to retry", delivered, failed)
            await purge_delivered(database, clock.now())

        interval = settings.scheduler_interval_seconds
        await asyncio.gather(
            _every(interval, stop, "scheduler pass", scheduler_round),
            _every(interval, stop, "webhook delivery", delivery_round),
        )


async def main(settings: Settings, clock: Clock) -> None:
    database = Database.for_settings(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    log.info("worker started: a pass every %ss", settings.scheduler_interval_seconds)
    try:
        await run_worker(database, settings, clock, stop)
    finally:
        await database.dispose()
        log.info("worker stopped")
