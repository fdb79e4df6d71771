"""The background worker: scheduler passes and webhook deliveries on a fixed interval, and
housekeeping (purges of what the service no longer needs) now and then. Any number may run at
once (`gridwork worker`); `make run` runs one inside the API process."""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.attachments.service import purge_unattached
from app.attachments.storage import LocalStorage, Storage
from app.auth.service import purge_expired_refresh_tokens, purge_stale_login_throttles
from app.clock import Clock
from app.config import Settings
from app.db import Database
from app.notifications.service import deliver_due, purge_delivered
from app.open311.gateway import purge_contacts
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


HOUSEKEEPING_INTERVAL_SECONDS = 600.0
BATCH = 500  # rows a purge handles per transaction
Purge = Callable[[AsyncSession], Awaitable[int | None]]


@dataclass
class Housekeeping:
    contacts_purged: int = 0
    uploads_purged: int = 0
    refresh_tokens_purged: int = 0
    login_throttles_purged: int = 0

    @property
    def handled(self) -> int:
        return (
            self.contacts_purged
            + self.uploads_purged
            + self.refresh_tokens_purged
            + self.login_throttles_purged
        )


async def _drain(database: Database, purge: Purge, batch: int | None) -> int:
    """Runs `purge` in transactions of its own until it finds less than a whole batch (a
    purge without batches runs once)."""
    total = 0
    while True:
        async with database.sessions() as session:
            done = await purge(session) or 0
            await session.commit()
        total += done
        if batch is None or done < batch:
            return total


async def housekeeping_pass(
    database: Database, settings: Settings, storage: Storage, now: datetime
) -> Housekeeping:
    """Purges, as of `now`: citizens' contact details older than
    `GRIDWORK_CONTACT_RETENTION_DAYS`, photos never given to a ticket within
    `GRIDWORK_UNATTACHED_UPLOAD_HOURS`, expired refresh tokens and stale sign-in throttles.
    Each purge is a conditional statement, so any number of workers may run it at once."""
    report = Housekeeping()
    report.contacts_purged = await _drain(
        database, lambda session: purge_contacts(session, settings, now, BATCH), BATCH
    )
    report.uploads_purged = await _drain(
        database, lambda session: purge_unattached(session, storage, settings, now, BATCH), BATCH
    )
    report.refresh_tokens_purged = await _drain(
        database, lambda session: purge_expired_refresh_tokens(session, now), None
    )
    report.login_throttles_purged = await _drain(
        database, lambda session: purge_stale_login_throttles(session, settings, now), None
    )
    return report


async def run_worker(
    database: Database,
    settings: Settings,
    clock: Clock,
    stop: asyncio.Event,
    storage: Storage | None = None,
) -> None:
    """The scheduler, webhook delivery and housekeeping as loops of their own, so a slow
    receiver or a long purge never delays an escalation."""
    photos = storage or LocalStorage(settings.attachments_dir)

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

        async def housekeeping_round() -> None:
            report = await housekeeping_pass(database, settings, photos, clock.now())
            if report.handled:
                log.info(
                    "housekeeping: %s contacts, %s unattached photos, %s refresh tokens purged",
                    report.contacts_purged,
                    report.uploads_purged,
                    report.refresh_tokens_purged,
                )

        interval = settings.scheduler_interval_seconds
        await asyncio.gather(
            _every(interval, stop, "scheduler pass", scheduler_round),
            _every(interval, stop, "webhook delivery", delivery_round),
            _every(HOUSEKEEPING_INTERVAL_SECONDS, stop, "housekeeping", housekeeping_round),
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
