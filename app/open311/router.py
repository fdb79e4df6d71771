from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from app.deps import AdminUser, ClockDep, SessionDep
from app.errors import PROBLEM_RESPONSES
from app.fields import Name
from app.open311 import clients
from app.open311.models import Open311Client

admin_router = APIRouter(prefix="/api/v1/open311", tags=["open311"], responses=PROBLEM_RESPONSES)


class ClientIn(BaseModel):
    name: Name


class ClientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    key_prefix: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


class NewClientOut(BaseModel):
    id: int
    name: str
    api_key: str


@admin_router.post("/clients", status_code=status.HTTP_201_CREATED, response_model=NewClientOut)
async def register_client(
    data: ClientIn, session: SessionDep, clock: ClockDep, admin: AdminUser
) -> NewClientOut:
    """Registers a citizen-facing application; its `api_key` is shown this once."""
    client, api_key = await clients.register(session, data.name, admin.username, clock.now())
    await session.commit()
    return NewClientOut(id=client.id, name=client.name, api_key=api_key)


@admin_router.get("/clients", response_model=list[ClientOut])
async def list_clients(session: SessionDep, _: AdminUser) -> list[Open311Client]:
    return list(await session.scalars(select(Open311Client).order_by(Open311Client.id)))


@admin_router.delete("/clients/{client_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_client(
    client_id: Annotated[int, Path(ge=1)], session: SessionDep, clock: ClockDep, _: AdminUser
) -> Response:
    """Revokes the client's key at once (revoking again changes nothing)."""
    await clients.revoke(session, client_id, clock.now())
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
