import hashlib
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, select, union
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from app.attachments import images
from app.attachments.models import Attachment
from app.attachments.storage import Storage
from app.auth.models import User
from app.config import Settings
from app.errors import NotFound, UnsupportedMedia
from app.tickets.models import Ticket
from app.tickets.service import get_visible_ticket


async def store_photo(
    session: AsyncSession, storage: Storage, user: User, data: bytes, now: datetime
) -> Attachment:
    try:
        photo = await images.limit_concurrency(lambda: run_in_threadpool(images.process, data))
    except images.NotAnImage as exc:
        raise UnsupportedMedia(str(exc)) from exc
    digest = hashlib.sha256(photo.data).hexdigest()
    thumbnail_digest = hashlib.sha256(photo.thumbnail).hexdigest()
    await storage.put(digest, photo.data)
    await storage.put(thumbnail_digest, photo.thumbnail)
    attachment = Attachment(
        id=uuid.uuid4().hex,
        sha256=digest,
        thumbnail_sha256=thumbnail_digest,
        media_type=photo.media_type,
        size_bytes=len(photo.data),
        width=photo.width,
        height=photo.height,
        uploaded_by=user.username,
        uploaded_at=now,
    )
    session.add(attachment)
    await session.flush()
    return attachment


async def visible_attachment(session: AsyncSession, user: User, attachment_id: str) -> Attachment:
    """The attachment if `user` uploaded it or may see its ticket; 404 otherwise."""
    attachment = await session.get(Attachment, attachment_id)
    if attachment is None:
        raise NotFound(f"attachment {attachment_id!r} does not exist")
    if attachment.uploaded_by != user.username:
        if attachment.ticket_id is None:
            raise NotFound(f"attachment {attachment_id!r} does not exist")
        await get_visible_ticket(session, user, attachment.ticket_id)
    return attachment


# The steps that bring photos, in the order of a ticket's life.
STAGES = ("report", "check", "assist", "feedback", "verify")


async def ticket_photos(session: AsyncSession, ticket: Ticket) -> list[Attachment]:
    """The ticket's photos, stage by stage, each stage's in the order they were taken."""
    photos = await session.scalars(select(Attachment).where(Attachment.ticket_id == ticket.id))
    return sorted(photos, key=lambda a: (STAGES.index(a.stage or "report"), a.uploaded_at, a.id))


# Housekeeping ---------------------------------------------------------------------------------

PURGE_BATCH = 500


async def purge_unattached(
    session: AsyncSession,
    storage: Storage,
    settings: Settings,
    now: datetime,
    batch: int = PURGE_BATCH,
) -> int:
    """Deletes up to `batch` photos uploaded more than `unattached_upload_hours` ago and never
    given to a ticket; returns how many (call again while a whole batch went). Their rows go
    in one conditional DELETE, committed here, so workers running it at once never delete the
    same row twice (PostgreSQL: each skips the rows another holds) and a photo given to a
    ticket meanwhile stays. The bytes go afterwards, each only when no attachment row names
    them any more (uploads of the same photo share them) and nobody stored them since."""
    cutoff = now - timedelta(hours=settings.unattached_upload_hours)
    due = (
        select(Attachment.id)
        .where(Attachment.ticket_id.is_(None), Attachment.uploaded_at < cutoff)
        .order_by(Attachment.uploaded_at)
        .limit(batch)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    deleted = (
        await session.execute(
            delete(Attachment)
            .where(Attachment.id.in_(due.scalar_subquery()), Attachment.ticket_id.is_(None))
            .returning(Attachment.sha256, Attachment.thumbnail_sha256)
            .execution_options(synchronize_session=False)
        )
    ).all()
    await session.commit()
    digests = {digest for row in deleted for digest in row}
    if digests:
        used = set(
            await session.scalars(
                union(
                    select(Attachment.sha256).where(Attachment.sha256.in_(digests)),
                    select(Attachment.thumbnail_sha256).where(
                        Attachment.thumbnail_sha256.in_(digests)
                    ),
                )
            )
        )
        await session.commit()
        for digest in sorted(digests - used):
            await storage.discard(digest, cutoff)
    return len(deleted)
