"""The demo's tickets (`gridwork seed-demo --tickets`), filed through the service."""

from collections import Counter

from sqlalchemy import select

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.demo import DEMO_TICKETS, seed_demo_tickets
from app.tickets.models import Ticket, TicketHistory
from tests.integration.test_rollups import assert_rollups_exact


async def test_the_demo_tickets_stand_at_each_step(
    world: Database, settings: Settings, clock: FrozenClock
) -> None:
    async with world.sessions() as session:
        assert await seed_demo_tickets(session, settings, clock.now()) == len(DEMO_TICKETS)
        await session.commit()
    async with world.sessions() as session:
        statuses = Counter((await session.scalars(select(Ticket.status))).all())
        steps = Counter((await session.scalars(select(TicketHistory.action))).all())
    assert statuses == {
        "reported": 3,
        "checking": 1,
        "dispatched": 4,
        "in_progress": 3,
        "feedback": 1,
        "closed": 1,
    }
    assert steps == {
        "report": 13,
        "dispatch": 9,
        "claim": 6,
        "feedback": 3,
        "verify": 2,
        "request_check": 1,
        "assist": 1,
        "urge": 1,
        "rate": 1,
        "reopen": 1,
    }
    await assert_rollups_exact(world)
