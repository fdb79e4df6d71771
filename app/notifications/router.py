"""Admins' view of webhook messages given up (dead letters), and retrying one."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict

from app.deps import AdminUser, ClockDep, SessionDep
from app.errors import PROBLEM_RESPONSES
from app.notifications import service
from app.notifications.models import OutboxMessage
from app.pagination import Page, PageDep

router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=PROBLEM_RESPONSES)


class OutboxMessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_id: UUID
    event_type: str
    ticket_id: int | None
    url: str
    payload: dict[str, Any]
    created_at: datetime
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None
    retried_at: datetime | None


MessageIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="the message's id")]


@router.get("/dead-letters", response_model=Page[OutboxMessageOut])
async def list_dead_letters(
    session: SessionDep, page: PageDep, _: AdminUser
) -> Page[OutboxMessageOut]:
    """Webhook messages given up after `GRIDWORK_WEBHOOK_MAX_ATTEMPTS` attempts or
    `GRIDWORK_WEBHOOK_MAX_AGE_HOURS`, newest first, with the last error; kept 30 days."""
    return await page.fetch_newest(
        session,
        service.dead_letters(),
        OutboxMessage.dead_at,  # type: ignore[arg-type]  # not null for a dead letter
        OutboxMessage.id,
        OutboxMessageOut.model_validate,
    )


@router.post("/dead-letters/{message_id}/retry", response_model=OutboxMessageOut)
async def retry_dead_letter(
    message_id: MessageIdPath, session: SessionDep, clock: ClockDep, _: AdminUser
) -> OutboxMessageOut:
    """Sends a dead letter again: due now, with its attempts and age counted afresh (the same
    event, so receivers deduplicate it by `event_id`). 404 when it is not a dead letter."""
    message = await service.retry_dead_letter(session, message_id, clock.now())
    shown = OutboxMessageOut.model_validate(message)
    await session.commit()
    return shown
