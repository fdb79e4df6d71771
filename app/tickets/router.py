from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, Path, Query, Response, status
from sqlalchemy import select

from app import reference
from app.auth.models import Role, User
from app.config import Settings
from app.deps import (
    ClockDep,
    CurrentUser,
    SessionDep,
    SettingsDep,
    built_by_coroutine,
    reads_from_replica,
    require_roles,
)
from app.errors import PROBLEM_RESPONSES, NotFound
from app.fields import start_of
from app.orgs.models import Level
from app.pagination import Page, PageDep
from app.tickets import listing, service
from app.tickets.deadlines import WarningLevel
from app.tickets.machine import Action, Status
from app.tickets.models import (
    Ticket,
    TicketHistory,
)
from app.tickets.nearby import open_tickets_near
from app.tickets.nearby import tickets_around as tickets_around_point
from app.tickets.numbers import ticket_number
from app.tickets.schemas import (
    ACTION_BODIES,
    MAX_ID,
    ActionIn,
    AroundTicket,
    EventIn,
    HistoryOut,
    Latitude,
    Longitude,
    NearbyTicket,
    TicketOut,
)

router = APIRouter(prefix="/api/v1", tags=["tickets"], responses=PROBLEM_RESPONSES)
TicketIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="ticket id")]
GridWorkerUser = Annotated[User, Depends(require_roles(Role.grid_worker))]

ACTION_DOCS = {
    Action.dispatch: "Send to a handling department (派遣); starts the handling deadline.",
    Action.reject: "Refuse to file the report (不予立案). `note` is required.",
    Action.merge: "Mark as a duplicate of another ticket (`duplicate_of`).",
    Action.claim: "The handling department signs for the ticket (签收).",
    Action.return_: "Send the ticket back for re-dispatch (退单). `note` is required.",
    Action.suspend: "Pause handling (挂起): the deadline clock stops.",
    Action.resume: "Resume handling; the deadline moves by the time paused.",
    Action.request_extension: "Ask for more time (`time_limit`); not once overdue.",
    Action.approve_extension: "Grant the pending extension (at most two per ticket).",
    Action.deny_extension: "Refuse the pending extension.",
    Action.feedback: "Report the handling done (处置反馈); the deadline stops.",
    Action.verify: "Check the result (核查): `passed` closes it, otherwise back to rework (返工).",
    Action.rate: "Rate the handling (`score` 1-5).",
    Action.escalate: "Pass the ticket one level up with a fresh deadline. `note` is required.",
    Action.request_check: "Send the report to its grid's worker to be checked on site (核实); "
    "the check limit runs.",
    Action.confirm: "The grid's worker confirms the report on site (核实属实): back to dispatch.",
    Action.refute: "The grid's worker finds the report untrue (核实不属实): rejected. `note` is "
    "required.",
    Action.assist: "An assisting department answers its part (协办回复), once. `note` is required.",
    Action.urge: "Urge the ticket (督办): counted and notified; nothing else changes. `note` is "
    "required.",
    Action.reopen: "Reopen a closed ticket (不满意重办) within the reopen window: back to its last "
    "department with a fresh deadline. `note` is required.",
}


@router.post(
    "/events",
    status_code=status.HTTP_201_CREATED,
    response_model=TicketOut,
    responses={200: {"model": TicketOut, "description": "a resend: the ticket filed before"}},
)
async def report_event(
    data: EventIn,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    user: GridWorkerUser,
) -> TicketOut:
    """A grid worker reports an event; it becomes a ticket owned by the community whose grid
    contains the point (a point up to 50 m outside a grid counts as in the nearest one)."""
    now = clock.now()
    ticket, created = await service.report_event(session, user, data, settings, now)
    await session.commit()
    if not created:
        response.status_code = status.HTTP_200_OK
    return service.render(ticket, user, settings, now)


@router.get("/tickets", response_model=Page[TicketOut])
@reads_from_replica
async def list_tickets(
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    user: CurrentUser,
    page: PageDep,
    status_: Annotated[list[Status] | None, Query(alias="status")] = None,
    level: Annotated[list[Level] | None, Query()] = None,
    org_unit: Annotated[str | None, Query(description="tickets of this unit's subtree")] = None,
    category: str | None = None,
    department: str | None = None,
    overdue: bool | None = None,
    warning: Annotated[WarningLevel | None, Query()] = None,
    reported_from: Annotated[
        date | datetime | None, Query(description="inclusive; a date is an Asia/Shanghai day")
    ] = None,
    reported_to: Annotated[
        date | datetime | None, Query(description="exclusive; a date is an Asia/Shanghai day")
    ] = None,
    awaiting: Annotated[
        Literal["me"] | None,
        Query(description="`me`: the caller's to-do list, what waits for their next step"),
    ] = None,
    urged: Annotated[bool | None, Query(description="urged (督办) at least once, or never")] = None,
) -> Page[TicketOut]:
    """Tickets in the caller's scope, newest first (by reporting time). `status` and `level`
    may repeat."""
    filters = listing.Filters(
        statuses=status_ or (),
        levels=level or (),
        area=None if org_unit is None else await reference.unit(session, org_unit),
        category=category,
        department=department,
        overdue=overdue,
        warning=warning,
        reported_from=_moment(reported_from, settings, "reported_from"),
        reported_to=_moment(reported_to, settings, "reported_to"),
        awaiting=awaiting is not None,
        urged=urged,
    )
    now = clock.now()
    rows = await listing.newest_page(session, user, filters, page, now)
    tickets = await service.read_only_tickets(session, rows.items)
    items = [service.render(ticket, user, settings, now) for ticket in tickets]
    return Page(items=items, next_cursor=rows.next_cursor)


def _moment(value: date | datetime | None, settings: Settings, name: str) -> datetime | None:
    return None if value is None else start_of(value, settings.timezone, name)


@router.get("/tickets/{ticket_id}", response_model=TicketOut)
async def get_ticket(
    ticket_id: TicketIdPath,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    user: CurrentUser,
) -> TicketOut:
    ticket = await service.read_visible_ticket(session, user, ticket_id)
    return service.render(ticket, user, settings, clock.now())


@router.get("/tickets/{ticket_id}/nearby", response_model=Page[NearbyTicket])
async def nearby_tickets(
    ticket_id: TicketIdPath,
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    page: PageDep,
    radius_m: Annotated[int, Query(ge=1, le=5000, description="default: 500 m")] = 500,
    same_category: bool = False,
) -> Page[NearbyTicket]:
    """Open tickets in the caller's scope near this one, nearest first (`limit` of them)."""
    ticket = await service.get_visible_ticket(session, user, ticket_id)
    conditions = [Ticket.id != ticket.id, service.visible_clause(user)]
    if same_category:
        conditions.append(Ticket.category_code == ticket.category_code)
    near = await open_tickets_near(
        session, ticket.lat, ticket.lon, radius_m, *conditions, limit=page.limit
    )
    return _near_page(NearbyTicket, near, settings)


def _near_page(
    model: type[NearbyTicket], near: list[tuple[Any, float]], settings: Settings
) -> Page[Any]:
    """Tickets near a point as a list page of `model`, with their numbers and distances."""
    tz = ZoneInfo(settings.timezone)
    items = [
        model.model_validate(
            {
                **t._asdict(),
                "number": ticket_number(t, settings.ticket_number_prefix, tz),
                "distance_m": round(d, 1),
            }
        )
        for t, d in near
    ]
    return Page(items=items, next_cursor=None)


@router.get("/nearby-tickets", response_model=Page[AroundTicket])
async def tickets_around(
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    user: CurrentUser,
    lat: Latitude,
    lon: Longitude,
    radius_m: Annotated[int, Query(ge=1, le=500)] = 100,
    category: str | None = None,
) -> Page[AroundTicket]:
    """Open tickets, and tickets closed in the last 7 days, within `radius_m` of the point,
    nearest first, at most 20, whatever the caller's scope (these fields only, never the
    reporter): a grid worker sees them before reporting, to follow one instead."""
    conditions = [] if category is None else [Ticket.category_code == category]
    near = await tickets_around_point(session, lat, lon, radius_m, clock.now(), *conditions)
    return _near_page(AroundTicket, near, settings)


@router.get("/tickets/{ticket_id}/history", response_model=Page[HistoryOut])
async def ticket_history(
    ticket_id: TicketIdPath, session: SessionDep, user: CurrentUser, page: PageDep
) -> Page[HistoryOut]:
    """Every change of the ticket, oldest first."""
    await service.get_visible_ticket(session, user, ticket_id)
    query = select(TicketHistory).where(TicketHistory.ticket_id == ticket_id)
    return await page.fetch(session, query, TicketHistory.id, HistoryOut.model_validate)


@dataclass
class Caller:
    session: SessionDep
    settings: SettingsDep
    clock: ClockDep
    user: CurrentUser


CallerDep = Annotated[Caller, Depends(built_by_coroutine(Caller))]


async def _take_action(
    caller: Caller, ticket_id: TicketIdPath, action: Action, body: ActionIn
) -> TicketOut:
    now = caller.clock.now()
    ticket = await service.perform_action(
        caller.session, caller.user, ticket_id, action, body, caller.settings, now
    )
    await caller.session.commit()
    return service.render(ticket, caller.user, caller.settings, now)


def _action_route(action: Action, body_model: type[ActionIn]) -> Any:
    """An endpoint for one action, so that OpenAPI documents each action's own body."""
    if any(f.is_required() for f in body_model.model_fields.values()):

        async def with_body(
            ticket_id: TicketIdPath,
            body: Annotated[body_model, Body()],  # type: ignore[valid-type]
            caller: CallerDep,
        ) -> TicketOut:
            return await _take_action(caller, ticket_id, action, body)

        return with_body

    async def optional_body(
        ticket_id: TicketIdPath,
        caller: CallerDep,
        body: Annotated[body_model | None, Body()] = None,  # type: ignore[valid-type]
    ) -> TicketOut:
        return await _take_action(caller, ticket_id, action, body or body_model())

    return optional_body


for _action, _body in ACTION_BODIES.items():
    router.add_api_route(
        f"/tickets/{{ticket_id}}/actions/{_action.value}",
        _action_route(_action, _body),
        methods=["POST"],
        response_model=TicketOut,
        name=f"ticket_{_action.value}",
        summary=f"Ticket action: {_action.value}",
        description=ACTION_DOCS[_action]
        + "\n\nRefused with 403 for a role that may not take it, 409 when the ticket's status"
        " does not allow it (the problem lists `allowed_actions`) or `expected_version` is stale.",
    )


@router.post("/tickets/{ticket_id}/actions/{action}", include_in_schema=False)
async def unknown_action(ticket_id: int, action: str) -> None:
    raise NotFound(
        f"there is no action {action!r}; actions are: " + ", ".join(a.value for a in Action)
    )
