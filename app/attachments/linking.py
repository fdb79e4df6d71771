"""Photos given to a ticket by the report, feedback or verification that names them."""

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.attachments.models import Attachment
from app.auth.models import User
from app.errors import Conflict, Invalid
from app.tickets.models import Ticket


async def check_unused(session: AsyncSession, user: User, ids: list[str]) -> None:
    """Each id names a photo `user` uploaded that belongs to no ticket yet."""
    if not ids:
        return
    found = {
        a.id: a for a in await session.scalars(select(Attachment).where(Attachment.id.in_(ids)))
    }
    for position, attachment_id in enumerate(ids):
        attachment = found.get(attachment_id)
        where: list[str | int] = ["body", "attachment_ids", position]
        if attachment is None or attachment.uploaded_by != user.username:
            raise Invalid(f"attachment {attachment_id!r} does not exist", loc=where)
        if attachment.ticket_id is not None:
            raise Invalid(f"attachment {attachment_id!r} belongs to a ticket already", loc=where)


async def attach(
    session: AsyncSession, user: User, ids: list[str], ticket: Ticket, stage: str
) -> None:
    """Gives the checked photos to `ticket` at `stage`, unless another request took one of
    them meanwhile (409, and nothing changes)."""
    if not ids:
        return
    taken = await session.execute(
        update(Attachment)
        .where(
            Attachment.id.in_(ids),
            Attachment.uploaded_by == user.username,
            Attachment.ticket_id.is_(None),
        )
        .values(ticket_id=ticket.id, stage=stage)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != len(set(ids)):  # type: ignore[attr-defined]
        raise Conflict("a photo was given to another ticket at the same time")
