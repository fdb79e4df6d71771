"""The background worker: scheduler passes and webhook deliveries on a fixed interval. Any
number may run at once (`gridwork worker`); `make run` runs one inside the API process."""

import asyncio
import contextlib
import logging
import signal

import httpx

from app.clock import Clock
from app.config import Settings
from app.db import Database
from app.notifications.service import deliver_due
from app.tickets.scheduler import run_pass

log = logging.getLogger(__name__)


async def run_once(
    database: Database, settings: Settings, clock: Clock, client: httpx.AsyncClient
) -> None:
    report = await run_pass(database, settings, clock.now())
    if report.handled:
        log.info(
            "scheduler: %s warned, %s escalated, %s overdue at the top level",
            report.warned,
            report.escalated,
            report.overdue,
        )
    delivered, failed = await deliver_due(database, settings, client, clock.now())
    if delivered or failed:
        log.info("webhooks: %s delivered, %s to retry", delivered, failed)


async def run_worker(
    database: Database, settings: Settings, clock: Clock, stop: asyncio.Event
) -> None:
    """Runs until `stop` is set. A failed pass (the database down, say) is logged and the next
    one tried after the interval: nothing it had claimed was committed."""
    async with httpx.AsyncClient(timeout=settings.webhook_timeout_seconds) as client:
        while not stop.is_set():
            try:
                await run_once(database, settings, clock, client)
            except Exception:
                log.exception("worker pass failed; retrying after the interval")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.scheduler_interval_seconds)


async def main(settings: Settings, clock: Clock) -> None:
    database = Database(settings.database_url, settings.database_pool_size)
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
