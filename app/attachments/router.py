from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from app.attachments import service
from app.attachments.models import Attachment
from app.attachments.storage import Storage
from app.deps import ClockDep, CurrentUser, SessionDep, SettingsDep
from app.errors import PROBLEM_RESPONSES, Invalid, NotFound, PayloadTooLarge
from app.tickets.router import TicketIdPath
from app.tickets.service import get_visible_ticket

router = APIRouter(prefix="/api/v1", tags=["attachments"], responses=PROBLEM_RESPONSES)
CHUNK = 256 * 1024


async def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


StorageDep = Annotated[Storage, Depends(get_storage)]


class AttachmentOut(BaseModel):
    id: str
    media_type: str
    size_bytes: int
    width: int
    height: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime
    ticket_id: int | None
    stage: str | None
    url: str
    thumbnail_url: str


def render(attachment: Attachment) -> AttachmentOut:
    url = f"/api/v1/attachments/{attachment.id}"
    return AttachmentOut(
        id=attachment.id,
        media_type=attachment.media_type,
        size_bytes=attachment.size_bytes,
        width=attachment.width,
        height=attachment.height,
        sha256=attachment.sha256,
        uploaded_by=attachment.uploaded_by,
        uploaded_at=attachment.uploaded_at,
        ticket_id=attachment.ticket_id,
        stage=attachment.stage,
        url=url,
        thumbnail_url=f"{url}/thumbnail",
    )


async def _read_limited(file: UploadFile, limit: int) -> bytes:
    chunks, size = [], 0
    while chunk := await file.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the photo is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            }
        },
    }
}


@router.post(
    "/attachments",
    status_code=status.HTTP_201_CREATED,
    response_model=AttachmentOut,
    openapi_extra=UPLOAD_BODY,
)
async def upload(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    storage: StorageDep,
    user: CurrentUser,
) -> AttachmentOut:
    """Stores a photo (JPEG, PNG, WebP or HEIC, told by its content) for a report, feedback or
    verification to name by its id. It is served upright and without EXIF or GPS data. The
    whole body is capped at the photo limit and a little framing (`app.bodies`)."""
    limit = settings.attachment_max_bytes
    async with request.form(max_files=1, max_fields=4) as form:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise Invalid("send the photo as the multipart field `file`", loc=["body", "file"])
        data = await _read_limited(file, limit)
    attachment = await service.store_photo(session, storage, user, data, clock.now())
    await session.commit()
    return render(attachment)


AttachmentId = Annotated[str, Path(max_length=32)]


async def _serve(storage: Storage, digest: str, media_type: str) -> Response:
    data = await storage.get(digest)
    if data is None:
        raise NotFound("the photo is missing from the store")
    headers = {"ETag": f'"{digest}"', "Cache-Control": "private, max-age=86400"}
    return Response(data, media_type=media_type, headers=headers)


@router.get("/attachments/{attachment_id}", response_class=Response)
async def photo(
    attachment_id: AttachmentId, session: SessionDep, storage: StorageDep, user: CurrentUser
) -> Response:
    """The photo, to its uploader and to whoever may see its ticket."""
    attachment = await service.visible_attachment(session, user, attachment_id)
    return await _serve(storage, attachment.sha256, attachment.media_type)


@router.get("/attachments/{attachment_id}/thumbnail", response_class=Response)
async def thumbnail(
    attachment_id: AttachmentId, session: SessionDep, storage: StorageDep, user: CurrentUser
) -> Response:
    """A JPEG at most 320 pixels wide and high."""
    attachment = await service.visible_attachment(session, user, attachment_id)
    return await _serve(storage, attachment.thumbnail_sha256, "image/jpeg")


@router.get("/tickets/{ticket_id}/attachments", response_model=list[AttachmentOut])
async def ticket_attachments(
    ticket_id: TicketIdPath, session: SessionDep, user: CurrentUser
) -> list[AttachmentOut]:
    """The ticket's photos with the stage each was given at (report, check, assist, feedback,
    verify), in that order."""
    ticket = await get_visible_ticket(session, user, ticket_id)
    return [render(a) for a in await service.ticket_photos(session, ticket)]
