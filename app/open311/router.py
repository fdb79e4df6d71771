"""Admin endpoints for Open311 clients, staff's view of a citizen request and of a ticket's
visibility on the public channel, and the GeoReport v2 gateway itself under /open311/v2 (errors
there are rendered by `main` in the spec's form)."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from starlette.datastructures import UploadFile

from app.auth.models import Role
from app.deps import AdminUser, ClockDep, CurrentUser, SessionDep, SettingsDep
from app.errors import PROBLEM_RESPONSES, Forbidden, Invalid, NotFound
from app.fields import Name
from app.open311 import clients, gateway
from app.open311.formats import NOT_XML, Format, respond
from app.open311.models import Open311Client, Open311Request
from app.tickets.models import Ticket
from app.tickets.router import TicketIdPath
from app.tickets.service import get_visible_ticket

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
    client_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    session: SessionDep,
    clock: ClockDep,
    _: AdminUser,
) -> Response:
    """Revokes the client's key at once (revoking again changes nothing)."""
    await clients.revoke(session, client_id, clock.now())
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class CitizenRequestOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    client_id: int
    requested_at: datetime
    address: str | None
    address_id: str | None
    media_url: str | None
    attributes: dict[str, Any]
    contact: dict[str, str]
    contact_purged_at: datetime | None = Field(
        description="when the contact details were emptied, GRIDWORK_CONTACT_RETENTION_DAYS "
        "after the request"
    )


# Citizens' names and phone numbers (PIPL): for the dispatch centre, whatever else others see.
CONTACT_READERS = frozenset({Role.dispatcher, Role.admin})
staff_router = APIRouter(prefix="/api/v1", tags=["open311"], responses=PROBLEM_RESPONSES)


@staff_router.get("/tickets/{ticket_id}/open311", response_model=CitizenRequestOut)
async def citizen_request(
    ticket_id: TicketIdPath, session: SessionDep, user: CurrentUser
) -> CitizenRequestOut:
    """What the citizen sent with a ticket filed through Open311: address, media URL and
    answers to the service's questions, for staff who may see the ticket; the citizen's contact
    details only for dispatchers and admins (others get an empty `contact`)."""
    await get_visible_ticket(session, user, ticket_id)
    request = await session.get(Open311Request, ticket_id)
    if request is None:
        raise NotFound(f"ticket {ticket_id} was not filed through Open311")
    shown = CitizenRequestOut.model_validate(request)
    if user.role not in CONTACT_READERS:
        shown.contact = {}
    return shown


class VisibilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden: bool = Field(description="true takes the ticket off the public channel")
    note: str = Field(
        min_length=1, max_length=1000, description="why: kept in the ticket's history"
    )


class VisibilityOut(BaseModel):
    ticket_id: int
    listed: bool = Field(
        description="the channel lists tickets of this kind (filed through Open311, or of a "
        "public category)"
    )
    hidden: bool
    public: bool = Field(description="the channel shows the ticket now: listed and not hidden")
    hidden_at: datetime | None
    hidden_by: str | None
    note: str | None = Field(description="why it was hidden")


def _visibility_out(visibility: gateway.Visibility) -> VisibilityOut:
    return VisibilityOut(
        ticket_id=visibility.ticket_id,
        listed=visibility.listed,
        hidden=visibility.hidden,
        public=visibility.listed and not visibility.hidden,
        hidden_at=visibility.hidden_at,
        hidden_by=visibility.hidden_by,
        note=visibility.note,
    )


@staff_router.get("/tickets/{ticket_id}/public-visibility", response_model=VisibilityOut)
async def public_visibility(
    ticket_id: TicketIdPath, session: SessionDep, user: CurrentUser
) -> VisibilityOut:
    """Whether the Open311 channel shows the ticket, and who hid it and why."""
    ticket = await get_visible_ticket(session, user, ticket_id)
    return _visibility_out(await gateway.visibility(session, ticket))


@staff_router.post("/tickets/{ticket_id}/public-visibility", response_model=VisibilityOut)
async def set_public_visibility(
    ticket_id: TicketIdPath,
    data: VisibilityIn,
    session: SessionDep,
    clock: ClockDep,
    user: CurrentUser,
) -> VisibilityOut:
    """Hides the ticket from the Open311 channel (its lists, `requests/{id}`, `tokens` and
    `servicerequestupdates`), or shows it again: dispatchers whose scope holds the ticket, and
    admins (404 outside the scope, 403 for other roles). A history row records who and why;
    asking for the state the ticket is in already changes nothing."""
    await get_visible_ticket(session, user, ticket_id)
    locked = await session.scalar(  # one change at a time per ticket
        select(Ticket).where(Ticket.id == ticket_id).with_for_update()
    )
    assert locked is not None
    visibility, changed = await gateway.set_hidden(
        session, user, locked, data.hidden, data.note, clock.now()
    )
    if changed:
        await session.commit()
    return _visibility_out(visibility)


# The GeoReport v2 gateway -----------------------------------------------------------------

SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-23T00:00:00+08:00"


async def check_parameters(
    request: Request,
    settings: SettingsDep,
    jurisdiction_id: Annotated[str | None, Query()] = None,
) -> None:
    """No control characters in the path or the query; the jurisdiction, when sent, is the
    one served."""
    for name, value in [*request.path_params.items(), *request.query_params.multi_items()]:
        if NOT_XML.search(value):
            raise Invalid(f"{name} contains control characters")
    gateway.check_jurisdiction(settings, jurisdiction_id)


gateway_router = APIRouter(
    prefix="/open311/v2",
    tags=["open311 GeoReport v2"],
    dependencies=[Depends(check_parameters)],
)
FormatPath = Annotated[Format, Path(description="json or xml")]


@gateway_router.get("/discovery.{fmt}")
async def discovery(fmt: FormatPath, request: Request, settings: SettingsDep) -> Response:
    """Open311 service discovery: where the GeoReport v2 endpoint is and what it speaks."""
    endpoint = {
        "specification": SPEC_URL,
        "url": str(request.url_for("services", fmt="json")).removesuffix("/services.json"),
        "changeset": CHANGESET,
        "type": "production",
        "formats": ["text/xml", "application/json"],
    }
    document = {
        "changeset": CHANGESET,
        "contact": settings.open311_contact,
        "key_service": "API keys are issued by the district's system operators",
        "endpoints": [endpoint],
    }
    return respond(fmt, "discovery", document)


@gateway_router.get("/services.{fmt}", name="services")
async def list_services(fmt: FormatPath, session: SessionDep) -> Response:
    """The services: one per event category."""
    return respond(fmt, "services", await gateway.services(session))


@gateway_router.get("/services/{service_code}.{fmt}")
async def service_definition(fmt: FormatPath, service_code: str, session: SessionDep) -> Response:
    """The questions a request of the service may answer (its attributes)."""
    return respond(fmt, "service_definition", await gateway.definition(session, service_code))


@gateway_router.post("/requests.{fmt}", status_code=status.HTTP_201_CREATED)
async def create_request(
    fmt: FormatPath,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
) -> Response:
    """Files a citizen's request (form-encoded, with the client's `api_key`): it becomes a
    ticket of source `open311` owned by the community whose grid contains lat/long, or whose
    name the address_string holds."""
    async with request.form(max_files=0, max_fields=200) as form:  # size: app.bodies
        items = [(k, v) for k, v in form.multi_items() if not isinstance(v, UploadFile)]
    api_key = dict(items).get("api_key")  # in the form, never the URL (which gets logged)
    parsed = gateway.RequestForm.parse([(k, v) for k, v in items if k != "api_key"])
    gateway.check_jurisdiction(settings, parsed.fields.get("jurisdiction_id"))
    client = await clients.lock_client_for_key(session, api_key) if api_key else None
    if client is None:
        raise Forbidden("api_key was not provided or is not valid")
    ticket, filed = await gateway.file_request(session, settings, clock.now(), client, parsed)
    await session.commit()
    document = [
        {
            "service_request_id": gateway.request_number(ticket, settings),
            "token": filed.token,
            "service_notice": "received; it will be dispatched to the department in charge",
            "account_id": None,
        }
    ]
    return respond(fmt, "service_requests", document, status.HTTP_201_CREATED)


@gateway_router.get("/requests.{fmt}")
async def list_requests(
    fmt: FormatPath,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    service_request_id: Annotated[str | None, Query(description="comma-separated")] = None,
    service_code: Annotated[str | None, Query(description="comma-separated")] = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status_: Annotated[str | None, Query(alias="status", description="open, closed")] = None,
) -> Response:
    """Requests filed through Open311 and tickets of public categories, newest first: the last
    90 days by default, a range of at most 90 days, at most 1000 requests."""
    query = gateway.RequestQuery(
        ids=gateway.split_list(service_request_id),
        service_codes=gateway.split_list(service_code),
        statuses=gateway.split_list(status_),
        start_date=start_date,
        end_date=end_date,
    )
    found = await gateway.find_requests(session, settings, query, clock.now())
    renderer = await gateway.Renderer(session, settings).load(found)
    return respond(fmt, "service_requests", [renderer.request(t) for t in found])


@gateway_router.get("/requests/{service_request_id}.{fmt}")
async def get_request(
    fmt: FormatPath, service_request_id: str, session: SessionDep, settings: SettingsDep
) -> Response:
    ticket = await gateway.find_request(session, settings, service_request_id)
    renderer = await gateway.Renderer(session, settings).load([ticket])
    return respond(fmt, "service_requests", [renderer.request(ticket)])


@gateway_router.get("/tokens/{token}.{fmt}")
async def get_token(
    fmt: FormatPath, token: str, session: SessionDep, settings: SettingsDep
) -> Response:
    """The service_request_id of a token returned when the request was filed."""
    return respond(fmt, "service_requests", [await gateway.find_token(session, settings, token)])


@gateway_router.get("/servicerequestupdates.{fmt}")
async def list_updates(
    fmt: FormatPath,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    start_date: str | None = None,
    end_date: str | None = None,
) -> Response:
    """The FixMyStreet extension: the public updates of the channel's requests between
    start_date and end_date (at most 90 days; the last 90 by default), oldest first, at most
    1000 (ask again from the last one's updated_datetime for more)."""
    start, end = gateway.date_range(start_date, end_date, settings.timezone, clock.now())
    updates = await gateway.find_updates(session, start, end)
    renderer = await gateway.Renderer(session, settings).load([t for _, t in updates])
    document = [gateway.render_update(renderer, row, ticket) for row, ticket in updates]
    return respond(fmt, "service_requests_updates", document)
