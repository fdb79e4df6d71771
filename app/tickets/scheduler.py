"""The scheduler pass: yellow warnings, missed deadlines and automatic escalation.

One indexed query finds the tickets whose alarm is due. On PostgreSQL they are claimed with
`FOR UPDATE SKIP LOCKED`, so several workers share the work and never take the same ticket;
each batch is one transaction, so a worker killed mid-batch commits nothing and its tickets
are taken again. A batch that fails is rolled back and redone with a savepoint per ticket,
so a ticket with bad data is set aside without holding up the others. (SQLite, for a single
worker, then commits ticket by ticket: releasing its outermost savepoint commits.)

What was done is stored on the ticket (its alarm stage), so a ticket is warned once and
escalated once per deadline however often passes run.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import Database
from app.notifications.service import enqueue
from app.tickets import deadlines
from app.tickets.deadlines import AlarmStage
from app.tickets.machine import Action
from app.tickets.models import Ticket
from app.tickets.schemas import ActionIn
from app.tickets.service import apply_action, can_escalate, record_system_change
from app.timing.calendar import WorkingCalendar
from app.timing.service import load_calendar

log = logging.getLogger(__name__)

ESCALATION_NOTE = "automatic: the deadline passed"
RETRY_FAILED = timedelta(minutes=10)


@dataclass
class PassReport:
    warned: int = 0
    escalated: int = 0
    overdue: int = 0  # missed at the district level: nowhere left to escalate
    failed: int = 0

    @property
    def handled(self) -> int:
        return self.warned + self.escalated + self.overdue


def _passed(moment: datetime | None, now: datetime) -> bool:
    return moment is not None and moment <= now


async def handle_alarm(
    session: AsyncSession,
    ticket: Ticket,
    settings: Settings,
    now: datetime,
    calendar: WorkingCalendar,
    report: PassReport,
) -> None:
    """Does what the ticket's alarm stage says is due at `now`. Each change is flushed with its
    history row, so the ticket's version counts its history."""
    running = deadlines.is_running(ticket)
    if running and ticket.alarm_stage == AlarmStage.warning and _passed(ticket.warning_at, now):
        ticket.alarm_stage = AlarmStage.deadline
        await record_system_change(session, ticket, "warn", now)
        enqueue(session, settings, "ticket.warned", ticket, now)
        report.warned += 1
    if running and ticket.alarm_stage == AlarmStage.deadline and _passed(ticket.deadline_at, now):
        ticket.overdue = True
        enqueue(session, settings, "ticket.overdue", ticket, now)
        if can_escalate(ticket):
            body = ActionIn(note=ESCALATION_NOTE)
            await apply_action(
                session,
                ticket,
                Action.escalate,
                body,
                user=None,
                settings=settings,
                now=now,
                calendar=calendar,
            )
            report.escalated += 1
        else:
            ticket.alarm_stage = None
            await record_system_change(session, ticket, "overdue", now)
            report.overdue += 1
    if _passed(ticket.alarm_at, now):  # an alarm that matches no stage: never loop on it
        log.warning("scheduler: ticket %s had a stray alarm; cleared", ticket.id)
        deadlines.sync_alarm(ticket)
        if _passed(ticket.alarm_at, now):
            ticket.alarm_at = None


def _due(database: Database, settings: Settings, now: datetime) -> Select[Any]:
    query = (
        select(Ticket)
        .where(Ticket.alarm_at <= now)
        .order_by(Ticket.alarm_at)
        .limit(settings.scheduler_batch_size)
    )
    return query if database.is_sqlite else query.with_for_update(skip_locked=True)


async def _handle_one_by_one(
    session: AsyncSession,
    tickets: Sequence[Ticket],
    settings: Settings,
    now: datetime,
    calendar: WorkingCalendar,
    report: PassReport,
) -> None:
    """Each ticket in a savepoint of its own: one that fails is logged and looked at again
    after RETRY_FAILED, and the others go through."""
    for ticket in tickets:
        ticket_id = ticket.id
        try:
            async with session.begin_nested():
                await handle_alarm(session, ticket, settings, now, calendar, report)
        except Exception:
            log.exception("scheduler: ticket %s could not be handled", ticket_id)
            report.failed += 1
            await session.execute(
                update(Ticket)
                .where(Ticket.id == ticket_id)
                .values(alarm_at=now + RETRY_FAILED)
                .execution_options(synchronize_session=False)
            )


async def run_pass(database: Database, settings: Settings, now: datetime) -> PassReport:
    """Handles every ticket whose alarm is due at `now`, a batch per transaction. When a batch
    fails, it is rolled back and redone ticket by ticket, so bad data holds up nobody else."""
    report = PassReport()
    while True:
        async with database.sessions() as session:
            tickets = (await session.scalars(_due(database, settings, now))).all()
            if not tickets:
                return report
            full_batch = len(tickets) == settings.scheduler_batch_size
            ids = [t.id for t in tickets]
            calendar = await load_calendar(session, settings)
            before = replace(report)
            try:
                for ticket in tickets:
                    await handle_alarm(session, ticket, settings, now, calendar, report)
                await session.commit()
            except Exception:
                await session.rollback()
                report = before
                tickets = (
                    await session.scalars(_due(database, settings, now).where(Ticket.id.in_(ids)))
                ).all()
                await _handle_one_by_one(session, tickets, settings, now, calendar, report)
                await session.commit()
        if not full_batch:
            return report
