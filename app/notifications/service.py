"""Notifications through an outbox: `enqueue` in the transaction of the change, `deliver_due`
from the worker, with retries and exponential backoff until the receiver takes it, or until
`GRIDWORK_WEBHOOK_MAX_ATTEMPTS` attempts or `GRIDWORK_WEBHOOK_MAX_AGE_HOURS` have passed: then
the message is a dead letter, kept for admins to see and retry.

Every post is signed: `X-Gridwork-Timestamp` is the Unix time of the post and
`X-Gridwork-Signature` is `sha256=` and the hex HMAC-SHA256, keyed with
`GRIDWORK_WEBHOOK_SECRET`, of the timestamp, a dot and the body. A receiver recomputes it,
compares in constant time, refuses a timestamp more than a few minutes from its own clock
(a replayed post), and deduplicates by `event_id`."""

import asyncio
import hashlib
import hmac
import json
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import Database
from app.errors import NotFound
from app.notifications.models import OutboxMessage
from app.tickets.models import Ticket
from app.tickets.numbers import ticket_number

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=5)
LONGEST_RETRY = timedelta(hours=1)
# How long a claimed message waits before another worker may try it (a worker died mid-post).
# A claim holds at most as many messages as can be posted well inside the lease.
CLAIM_LEASE = timedelta(minutes=2)
PARALLEL_POSTS = 10
DELIVERED_KEPT = timedelta(days=7)
DEAD_KEPT = timedelta(days=30)  # dead letters an admin neither retried nor needed


def ticket_summary(ticket: Ticket, settings: Settings) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "number": ticket_number(ticket, settings.ticket_number_prefix, ZoneInfo(settings.timezone)),
        "status": ticket.status,
        "level": ticket.level,
        "owner_unit_code": ticket.owner_unit_code,
        "grid_code": ticket.grid_code,
        "category_code": ticket.category_code,
        "department_code": ticket.department_code,
        "deadline_at": ticket.deadline_at.isoformat() if ticket.deadline_at else None,
        "overdue": ticket.overdue,
    }


def enqueue(
    session: AsyncSession,
    settings: Settings,
    event_type: str,
    ticket: Ticket,
    now: datetime,
    details: dict[str, Any] | None = None,
) -> None:
    """Writes the event for every configured webhook into the session's transaction."""
    urls = settings.webhook_url_list
    if not urls:
        return
    event_id = uuid.uuid4()
    payload = {
        "event_id": str(event_id),
        "type": event_type,
        "occurred_at": now.isoformat(),
        "ticket": ticket_summary(ticket, settings),
        "details": details or {},
    }
    for url in urls:
        session.add(
            OutboxMessage(
                event_id=event_id,
                event_type=event_type,
                ticket_id=ticket.id,
                url=url,
                payload=payload,
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        )


def retry_delay(attempts: int) -> timedelta:
    doublings = min(max(attempts - 1, 0), 20)  # 5 s * 2**20 is far past the cap already
    return min(FIRST_RETRY * 2**doublings, LONGEST_RETRY)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Gridwork-Signature` of a post: the HMAC-SHA256 of `timestamp.body`."""
    signed = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


async def _claim(database: Database, now: datetime, batch: int) -> list[OutboxMessage]:
    """Leases due messages with a conditional UPDATE, so that several workers never post the
    same message at once, and commits before any HTTP request is made."""
    async with database.sessions() as session:
        due = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.delivered_at.is_(None),
                OutboxMessage.dead_at.is_(None),
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(batch)
        )
        if not database.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        claimed = (
            await session.scalars(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(due.scalar_subquery()))
                .values(next_attempt_at=now + CLAIM_LEASE, attempts=OutboxMessage.attempts + 1)
                .returning(OutboxMessage)
            )
        ).all()
        await session.commit()
        return sorted(claimed, key=lambda message: message.id)  # in the order events happened


async def _post(
    client: httpx.AsyncClient, settings: Settings, message: OutboxMessage, now: datetime
) -> str | None:
    """Posts one message, signed with the time of posting; returns None when the receiver took
    it, else what went wrong."""
    body = json.dumps(message.payload, ensure_ascii=False, separators=(",", ":")).encode()
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "X-Gridwork-Event": message.event_type,
        "X-Gridwork-Delivery": str(message.event_id),
        "X-Gridwork-Timestamp": str(timestamp),
    }
    # Settings refuse webhook URLs without a secret; only a test's Settings object changed
    # after validation can get here without one.
    if settings.webhook_secret:
        headers["X-Gridwork-Signature"] = signature(settings.webhook_secret, timestamp, body)
    try:
        response = await client.post(message.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:1000]
    if response.is_success:
        return None
    return f"HTTP {response.status_code}: {response.text[:200]}"


def claim_size(settings: Settings) -> int:
    """As many messages as PARALLEL_POSTS posts can finish in half the lease, timeouts and all."""
    rounds = int(CLAIM_LEASE.total_seconds() / 2 // settings.webhook_timeout_seconds)
    return max(1, rounds) * PARALLEL_POSTS


def gives_up(message: OutboxMessage, settings: Settings, now: datetime) -> bool:
    """Whether a failed attempt was the message's last: its attempts or its age are spent (the
    age counts from an admin's retry, if any)."""
    since = message.retried_at or message.created_at
    too_old = now - since >= timedelta(hours=settings.webhook_max_age_hours)
    return message.attempts >= settings.webhook_max_attempts or too_old


async def deliver_due(
    database: Database, settings: Settings, client: httpx.AsyncClient, now: datetime
) -> tuple[int, int]:
    """Delivers the messages due at `now`, several at a time; returns (delivered, failed).
    A failed message is retried later, or becomes a dead letter when `gives_up`. A result is
    recorded only while this worker's claim still holds (same attempt, not yet delivered), so
    a slow post that outlives the lease cannot overwrite a later one."""
    messages = await _claim(database, now, claim_size(settings))
    gate = asyncio.Semaphore(PARALLEL_POSTS)

    async def post(message: OutboxMessage) -> str | None:
        async with gate:
            return await _post(client, settings, message, now)

    errors = await asyncio.gather(*(post(m) for m in messages))
    async with database.sessions() as session:
        for message, error in zip(messages, errors, strict=True):
            values: dict[str, Any]
            if error is None:
                values = {"delivered_at": now, "last_error": None}
            elif gives_up(message, settings, now):
                values = {"dead_at": now, "last_error": error}
                log.error(
                    "webhook %s gave up after %s attempts: message %s is a dead letter: %s",
                    message.url,
                    message.attempts,
                    message.id,
                    error,
                )
            else:
                values = {
                    "next_attempt_at": now + retry_delay(message.attempts),
                    "last_error": error,
                }
                log.warning(
                    "webhook %s failed (attempt %s): %s", message.url, message.attempts, error
                )
            await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == message.id,
                    OutboxMessage.attempts == message.attempts,
                    OutboxMessage.delivered_at.is_(None),
                )
                .values(**values)
            )
        await session.commit()
    failed = sum(error is not None for error in errors)
    return len(messages) - failed, failed


async def purge_delivered(database: Database, now: datetime) -> int:
    """Drops messages delivered more than DELIVERED_KEPT ago, and dead letters left alone
    for DEAD_KEPT."""
    async with database.sessions() as session:
        result = await session.execute(
            delete(OutboxMessage).where(
                or_(
                    OutboxMessage.delivered_at < now - DELIVERED_KEPT,
                    OutboxMessage.dead_at < now - DEAD_KEPT,
                )
            )
        )
        await session.commit()
        return int(result.rowcount)  # type: ignore[attr-defined]


# Dead letters ------------------------------------------------------------------------------


def dead_letters() -> Select[Any]:
    return select(OutboxMessage).where(OutboxMessage.dead_at.is_not(None))


async def retry_dead_letter(session: AsyncSession, message_id: int, now: datetime) -> OutboxMessage:
    """Makes a dead letter due again now, with its attempts and its age counted afresh; 404
    when there is no such dead letter (never was, delivered, or retried meanwhile)."""
    retried = await session.scalar(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.dead_at.is_not(None))
        .values(dead_at=None, retried_at=now, attempts=0, next_attempt_at=now)
        .returning(OutboxMessage)
        .execution_options(synchronize_session=False)
    )
    if retried is None:
        raise NotFound(f"webhook message {message_id} is not a dead letter")
    return retried
