"""The GeoReport v2 citizen channel: services are the categories, service requests are tickets.

The channel shows tickets filed through it and tickets of public categories, except those a
dispatcher hid, with what a citizen may know: the status as `open` or `closed` with a note
written for the public (never the staff's own notes), the department in charge and the
deadline, and never who reported it. Staff's own reports show their category's name instead of
the reporter's text; positions are rounded to about 100 m, and a citizen's address is shown
as the grid it lies in (staff read what was sent at /api/v1/tickets/{id}/open311).
"""

import math
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import Role, User
from app.config import Settings
from app.errors import Forbidden, Invalid, NotFound, TooManyRequests
from app.fields import start_of
from app.open311.formats import NOT_XML
from app.open311.models import Open311Client, Open311Request, PublicHiddenTicket
from app.orgs.geo import GridMatch
from app.orgs.models import Category, Department, Level, OrgUnit
from app.orgs.service import service_attributes
from app.reference import grid_map
from app.tickets import service as tickets
from app.tickets.machine import CLOSED_STATUSES, OPEN_STATUSES, Action, Status
from app.tickets.models import IS_OPEN, Ticket, TicketHistory
from app.tickets.numbers import ticket_id_of, ticket_number

MAX_SPAN = timedelta(days=90)
MAX_RESULTS = 1000
MAX_DESCRIPTION = 4000
CONTACT_FIELDS = ("email", "first_name", "last_name", "phone", "device_id", "account_id")
_ATTRIBUTE_KEY = re.compile(r"^attribute\[([^\[\]]{1,64})\](\[\])?$")


class Open311NotFound(NotFound):
    """A 404 of the channel: its text is the whole error description."""


def check_jurisdiction(settings: Settings, jurisdiction_id: str | None) -> None:
    """One jurisdiction is served: an id, when one is configured and sent, must be it."""
    configured = settings.open311_jurisdiction_id
    if configured and jurisdiction_id and jurisdiction_id != configured:
        raise Open311NotFound(f"jurisdiction_id {jurisdiction_id[:60]!r} was not found")


def channel_clause() -> ColumnElement[bool]:
    """The tickets the channel lists: filed through it, or of a public category, and not
    hidden by a dispatcher."""
    public = select(Category.code).where(Category.public.is_(True))
    hidden = exists().where(PublicHiddenTicket.ticket_id == Ticket.id)
    listed = (Ticket.source == "open311") | Ticket.category_code.in_(public.scalar_subquery())
    return listed & ~hidden


# Services ---------------------------------------------------------------------------------


def service_of(category: Category) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": category.name,
        "metadata": bool(category.attributes),
        "type": "realtime",
        "keywords": "",
        "group": "",
    }


async def services(session: AsyncSession) -> list[dict[str, Any]]:
    categories = await session.scalars(select(Category).order_by(Category.code))
    return [service_of(c) for c in categories]


async def category_of(session: AsyncSession, service_code: str) -> Category:
    category = await session.get(Category, service_code)
    if category is None:
        raise Open311NotFound(f"service_code {service_code!r} was not found")
    return category


async def definition(session: AsyncSession, service_code: str) -> dict[str, Any]:
    category = await category_of(session, service_code)
    attributes = [a.model_dump(mode="json") for a in service_attributes(category)]
    return {"service_code": category.code, "attributes": attributes}


# Filing -----------------------------------------------------------------------------------


@dataclass
class RequestForm:
    """The fields of POST requests, each given at most once; an empty field counts as absent
    (GeoReport v2, "Optional Arguments")."""

    fields: dict[str, str]
    attributes: dict[str, str | list[str]]

    @classmethod
    def parse(cls, items: Sequence[tuple[str, str]]) -> "RequestForm":
        fields: dict[str, str] = {}
        attributes: dict[str, str | list[str]] = {}
        for key, value in items:
            if NOT_XML.search(value):
                raise Invalid(f"{key} contains control characters")
            if (match := _ATTRIBUTE_KEY.match(key)) is not None:
                code, many = match.groups()
                if many:
                    listed = attributes.setdefault(code, [])
                    if isinstance(listed, list) and value:
                        listed.append(value)
                elif value:
                    attributes[code] = value
            elif value.strip():
                if key in fields:
                    raise Invalid(f"{key} is given more than once")
                fields[key] = value.strip()
        return cls(fields, attributes)

    def text(self, name: str, max_length: int) -> str | None:
        value = self.fields.get(name)
        if value is not None and len(value) > max_length:
            raise Invalid(f"{name} is longer than {max_length} characters")
        return value

    def number(self, name: str, low: float, high: float) -> float | None:
        value = self.fields.get(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            raise Invalid(f"{name} is not a number: {value[:40]!r}") from None
        if not low <= number <= high:
            raise Invalid(f"{name} must be between {low:g} and {high:g}")
        return number


def _check_attributes(category: Category, given: Mapping[str, str | list[str]]) -> None:
    """The answers to the service definition's questions. Attributes it does not define are
    kept as given (clients such as FixMyStreet send their own)."""
    if len(given) > 50 or any(
        len(v) > 2000
        for values in given.values()
        for v in ([values] if isinstance(values, str) else values)
    ):
        raise Invalid("too many attributes, or an attribute value over 2000 characters")
    for attribute in service_attributes(category):
        if not attribute.variable:
            continue
        code, kind = attribute.code, attribute.datatype
        value = given.get(code)
        if value is None or value == []:
            if attribute.required:
                raise Invalid(f"attribute[{code}] is required: {attribute.description}")
            continue
        values = value if isinstance(value, list) else [value]
        keys = {v.key for v in attribute.values}
        if kind != "multivaluelist" and len(values) > 1:
            raise Invalid(f"attribute[{code}] takes one value")
        for one in values:
            if keys and one not in keys:
                raise Invalid(f"attribute[{code}]: {one[:40]!r} is not one of {sorted(keys)}")
            if kind == "number" and not _isrequest_number(one):
                raise Invalid(f"attribute[{code}] is not a number: {one[:40]!r}")
            if kind == "datetime" and not _is_datetime(one):
                raise Invalid(
                    f"attribute[{code}] is not an ISO 8601 date-time with an offset: {one[:40]!r}"
                )
            if kind == "string" and "\n" in one:
                raise Invalid(f"attribute[{code}] is a single line of text")


def _isrequest_number(value: str) -> bool:
    try:
        return "_" not in value and math.isfinite(float(value))
    except ValueError:
        return False


def _is_datetime(value: str) -> bool:
    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


async def place_address(
    session: AsyncSession, address: str
) -> tuple[GridMatch, float, float] | None:
    """A grid and a point in it for an address that names one community (the longest name
    found in it), preferring a grid of that community also named: without a geocoder, the
    names of the org units are the only addresses known."""
    communities = (
        await session.execute(
            select(OrgUnit.code, OrgUnit.name, OrgUnit.path).where(OrgUnit.level == Level.community)
        )
    ).all()
    named = [c for c in communities if len(c.name) >= 2 and c.name in address]
    if not named:
        return None
    community = max(named, key=lambda c: len(c.name))
    grid_names = dict(
        (
            await session.execute(
                select(OrgUnit.code, OrgUnit.name).where(OrgUnit.parent_code == community.code)
            )
        ).all()
    )
    mapped = await grid_map(session)
    candidates = sorted(
        (i for i, path in enumerate(mapped.paths) if path.startswith(community.path)),
        key=lambda i: (grid_names.get(mapped.codes[i], "") not in address, mapped.codes[i]),
    )
    if not candidates:
        return None
    best = candidates[0]
    point = mapped.shapes[best].representative_point()
    return GridMatch(mapped.codes[best], mapped.paths[best], 0.0), point.y, point.x


async def _locate(
    session: AsyncSession, settings: Settings, form: RequestForm
) -> tuple[GridMatch, float, float, dict[str, Any]]:
    lat, lon = form.number("lat", -90, 90), form.number("long", -180, 180)
    if (lat is None) != (lon is None):
        raise Invalid("lat and long must be sent together")
    if lat is not None and lon is not None:
        return await tickets.locate(session, settings, lat, lon, ["lat"]), lat, lon, {}
    address = form.text("address_string", 500)
    if address is None:
        raise Invalid(
            "a location is required: lat and long, or an address_string naming a community"
        )
    placed = await place_address(session, address)
    if placed is None:
        raise Invalid(
            "address_string names no community of the district; send lat and long instead"
        )
    match, lat, lon = placed
    return match, lat, lon, {"located_by": "address_string"}


async def check_rate(
    session: AsyncSession, client: Open311Client, settings: Settings, now: datetime
) -> None:
    """At most `open311_requests_per_minute` filings per client key in any minute (the caller
    holds the client's row locked, so its filings are counted one after the other)."""
    recent = await session.scalar(
        select(func.count())
        .select_from(Open311Request)
        .where(
            Open311Request.client_id == client.id,
            Open311Request.requested_at > now - timedelta(minutes=1),
        )
    )
    if (recent or 0) >= settings.open311_requests_per_minute:
        raise TooManyRequests(
            f"this api_key may file {settings.open311_requests_per_minute} requests a minute; "
            "try again shortly",
            headers={"Retry-After": "60"},
        )


async def file_request(
    session: AsyncSession,
    settings: Settings,
    now: datetime,
    client: Open311Client,
    form: RequestForm,
) -> tuple[Ticket, Open311Request]:
    """A citizen's request becomes a ticket of source `open311`, reported now and owned by the
    community of the grid at its point, on the same state machine as every ticket."""
    service_code = form.fields.get("service_code")
    if service_code is None:
        raise Invalid("service_code was not provided")
    category = await category_of(session, service_code)
    _check_attributes(category, form.attributes)
    match, lat, lon, located = await _locate(session, settings, form)
    description = form.text("description", MAX_DESCRIPTION) or category.name
    media_url = form.text("media_url", 2000)
    if media_url is not None and not media_url.startswith(("http://", "https://")):
        raise Invalid("media_url must be an http or https URL")
    contact = {name: value for name in CONTACT_FIELDS if (value := form.text(name, 200))}
    await check_rate(session, client, settings, now)
    ticket = await tickets.new_ticket(
        session,
        settings,
        now,
        category,
        match,
        source="open311",
        description=description,
        lat=lat,
        lon=lon,
    )
    session.add(ticket)
    await session.flush()
    request = Open311Request(
        ticket_id=ticket.id,
        client_id=client.id,
        token=secrets.token_hex(16),
        requested_at=now,
        address=form.text("address_string", 500),
        address_id=form.text("address_id", 200),
        media_url=media_url,
        attributes=dict(form.attributes),
        contact=contact,
    )
    session.add(request)
    actor = f"open311:{client.name}"[:64]
    session.add(tickets.report_history(ticket, actor, now, match, client_id=client.id, **located))
    await session.flush()
    return ticket, request


# Reading ----------------------------------------------------------------------------------


def _moment(value: str | None, name: str, timezone: str, *, end: bool) -> datetime | None:
    """A w3 date-time with its offset (a `+` sent unencoded arrives as a space); a bare date
    is its whole local day: its start, or its end for `end_date`."""
    if value is None or not value.strip():
        return None
    text = value.strip().replace(" ", "+")
    try:
        if len(text) == 10:
            day = date.fromisoformat(text) + timedelta(days=1 if end else 0)
            return start_of(day, timezone, name) - timedelta(microseconds=1 if end else 0)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{name} is not a w3 date-time such as 2026-01-01T00:00:00Z") from None
    if moment.tzinfo is None:
        raise Invalid(f"{name} needs a time zone (Z or an offset such as +08:00)")
    return moment.astimezone(UTC)


def date_range(
    start_date: str | None, end_date: str | None, timezone: str, now: datetime
) -> tuple[datetime, datetime]:
    """The spec's range of start_date and end_date: at most 90 days, the last 90 by default,
    90 from a lone bound."""
    try:
        start = _moment(start_date, "start_date", timezone, end=False)
        end = _moment(end_date, "end_date", timezone, end=True)
        if start is not None and end is not None:
            if end < start:
                raise Invalid("end_date is before start_date")
            if end - start > MAX_SPAN:
                raise Invalid("start_date and end_date may not span more than 90 days")
            return start, end
        if start is not None:
            return start, start + MAX_SPAN
        if end is not None:
            return end - MAX_SPAN, end
        return now - MAX_SPAN, now
    except OverflowError:
        raise Invalid("start_date or end_date is out of range") from None


def split_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@dataclass
class RequestQuery:
    ids: list[str]
    service_codes: list[str]
    statuses: list[str]
    start_date: str | None
    end_date: str | None


async def find_requests(
    session: AsyncSession, settings: Settings, query: RequestQuery, now: datetime
) -> list[Ticket]:
    """The tickets a GET requests asks for, newest first, at most 1000. Named ids override
    every other filter."""
    statement = select(Ticket).where(channel_clause())
    if query.ids:
        if len(query.ids) > MAX_RESULTS:
            raise Invalid(f"at most {MAX_RESULTS} service_request_id at once")
        ids = [ticket_id_of(n, settings.ticket_number_prefix) for n in query.ids]
        statement = statement.where(Ticket.id.in_([i for i in ids if i is not None]))
    else:
        unknown = set(query.statuses) - {"open", "closed"}
        if unknown:
            raise Invalid(f"status may be open or closed, not {sorted(unknown)[0][:20]!r}")
        if query.service_codes:
            statement = statement.where(Ticket.category_code.in_(query.service_codes))
        if set(query.statuses) == {"open"}:
            statement = statement.where(IS_OPEN)
        elif set(query.statuses) == {"closed"}:
            statement = statement.where(~IS_OPEN)
        start, end = date_range(query.start_date, query.end_date, settings.timezone, now)
        statement = statement.where(Ticket.reported_at.between(start, end))
    statement = statement.order_by(Ticket.reported_at.desc(), Ticket.id.desc()).limit(MAX_RESULTS)
    found = list(await session.scalars(statement))
    if query.ids:  # a number whose day part does not match its id names no request
        wanted = set(query.ids)
        found = [t for t in found if request_number(t, settings) in wanted]
    return found


def request_number(ticket: Ticket, settings: Settings) -> str:
    """A ticket's service_request_id: its number."""
    return ticket_number(ticket, settings.ticket_number_prefix, ZoneInfo(settings.timezone))


async def find_request(session: AsyncSession, settings: Settings, number: str) -> Ticket:
    ticket_id = ticket_id_of(number, settings.ticket_number_prefix)
    ticket = (
        await session.scalar(select(Ticket).where(Ticket.id == ticket_id, channel_clause()))
        if ticket_id is not None
        else None
    )
    if ticket is None or request_number(ticket, settings) != number:
        raise Open311NotFound(f"service_request_id {number[:40]!r} was not found")
    return ticket


async def find_token(session: AsyncSession, settings: Settings, token: str) -> dict[str, Any]:
    ticket = await session.scalar(
        select(Ticket).join(Open311Request).where(Open311Request.token == token, channel_clause())
    )
    if ticket is None:
        raise Open311NotFound(f"token {token[:40]!r} was not found")
    return {"service_request_id": request_number(ticket, settings), "token": token}


# Rendering --------------------------------------------------------------------------------

PUBLIC_DECIMALS = 3  # 0.001 degree: about 110 m north-south, 100 m east-west here


def public_degrees(value: float) -> float:
    """A coordinate as the channel shows it: rounded to about 100 m."""
    return round(value, PUBLIC_DECIMALS)


async def place_names(session: AsyncSession, grid_codes: Iterable[str | None]) -> dict[str, str]:
    """The public name of each grid: its units' names from the top down (南海区桂城街道东二社区
    第2网格), a name left out where the next one already begins with it."""
    codes = {c for c in grid_codes if c}
    if not codes:
        return {}
    paths = dict(
        (await session.execute(select(OrgUnit.code, OrgUnit.path).where(OrgUnit.code.in_(codes))))
        .tuples()
        .all()
    )
    chains = {code: [c for c in path.split("/") if c] for code, path in paths.items()}
    every = {c for chain in chains.values() for c in chain}
    names = dict(
        (await session.execute(select(OrgUnit.code, OrgUnit.name).where(OrgUnit.code.in_(every))))
        .tuples()
        .all()
    )
    places = {}
    for code, chain in chains.items():
        parts = [names.get(c, "") for c in chain]
        kept = [
            p for p, after in zip(parts, [*parts[1:], ""], strict=True) if not after.startswith(p)
        ]
        places[code] = "".join(kept)
    return places


PUBLIC_NOTES = {
    Status.reported: "received; waiting to be dispatched",
    Status.checking: "received; being checked on site",
    Status.dispatched: "dispatched to {agency}",
    Status.in_progress: "being handled by {agency}",
    Status.suspended: "handling is paused",
    Status.feedback: "handled; waiting to be checked",
    Status.closed: "resolved",
    Status.rated: "resolved",
    Status.rejected: "not accepted as a case",
    Status.merged: "a duplicate of {duplicate}",
}
HANDLING = frozenset({Status.dispatched, Status.in_progress, Status.suspended})


class Renderer:
    """Renders tickets for the channel, with the names and numbers they refer to loaded once."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.tz = ZoneInfo(settings.timezone)
        self.categories: dict[str, str] = {}
        self.agencies: dict[str, str] = {}
        self.numbers: dict[int, str] = {}
        self.requests: dict[int, Open311Request] = {}
        self.places: dict[str, str] = {}  # grid code -> its public name

    async def load(self, ticket_list: list[Ticket]) -> "Renderer":
        ids = [t.id for t in ticket_list]
        self.categories = dict(
            (await self.session.execute(select(Category.code, Category.name))).all()
        )
        self.agencies = dict(
            (await self.session.execute(select(Department.code, Department.name))).all()
        )
        originals = {t.duplicate_of for t in ticket_list if t.duplicate_of is not None}
        shown = select(Ticket).where(Ticket.id.in_(originals), channel_clause())
        for original in await self.session.scalars(shown):
            self.numbers[original.id] = request_number(original, self.settings)
        for request in await self.session.scalars(
            select(Open311Request).where(Open311Request.ticket_id.in_(ids))
        ):
            self.requests[request.ticket_id] = request
        addressed = {t.grid_code for t in ticket_list if t.id in self.requests}
        self.places = await place_names(self.session, addressed)
        return self

    def moment(self, value: datetime | None) -> str | None:
        return value.astimezone(self.tz).isoformat(timespec="seconds") if value else None

    def note(self, ticket: Ticket, status: Status) -> str:
        if status in CLOSED_STATUSES and ticket.self_resolved:
            return "resolved on the spot"
        return PUBLIC_NOTES[status].format(
            agency=self.agencies.get(ticket.department_code or "", "the department in charge"),
            duplicate=self.numbers.get(ticket.duplicate_of or 0, "another request"),
        )

    def description(self, ticket: Ticket) -> str:
        """A citizen's own text; for staff's reports, whose text is internal, the category."""
        if ticket.source == "open311":
            return ticket.description
        return self.categories.get(ticket.category_code, ticket.category_code)

    def address(self, ticket: Ticket, extra: Open311Request | None) -> str | None:
        """Where a citizen's address lies, to the grid: never their words (a house number, a
        name), which staff read at /api/v1/tickets/{id}/open311."""
        if extra is None or extra.address is None:
            return None
        return self.places.get(ticket.grid_code or "")

    def request(self, ticket: Ticket) -> dict[str, Any]:
        status = Status(ticket.status)
        extra = self.requests.get(ticket.id)
        return {
            "service_request_id": request_number(ticket, self.settings),
            "status": "open" if status in OPEN_STATUSES else "closed",
            "status_notes": self.note(ticket, status),
            "service_name": self.categories.get(ticket.category_code, ticket.category_code),
            "service_code": ticket.category_code,
            "description": self.description(ticket),
            "agency_responsible": self.agencies.get(ticket.department_code or ""),
            "service_notice": None,
            "requested_datetime": self.moment(ticket.reported_at),
            "updated_datetime": self.moment(ticket.updated_at),
            "expected_datetime": self.moment(ticket.deadline_at) if status in HANDLING else None,
            "address": self.address(ticket, extra),
            "address_id": None,  # the client's own id of the citizen's address
            "zipcode": None,
            "lat": public_degrees(ticket.lat),
            "long": public_degrees(ticket.lon),
            "media_url": extra.media_url if extra else None,
        }


# Updates (the FixMyStreet servicerequestupdates extension) --------------------------------

# The status an update reports, by the action recorded in the ticket's history, in
# FixMyStreet's vocabulary; actions not listed are not published.
UPDATE_STATUS = {
    Action.dispatch: "action_scheduled",
    Action.claim: "in_progress",
    Action.return_: "investigating",
    Action.suspend: "in_progress",
    Action.resume: "in_progress",
    Action.escalate: "investigating",
    Action.feedback: "in_progress",
    Action.reject: "closed",
    Action.merge: "duplicate",
    Action.request_check: "investigating",
    Action.confirm: "investigating",
    Action.refute: "closed",
    Action.reopen: "open",
}
UPDATE_NOTES = {
    Action.return_: "returned by the department; waiting to be dispatched again",
    Action.escalate: "passed up to the {level} level",
    Action.confirm: "confirmed on site; waiting to be dispatched",
    Action.refute: "not found on site: not accepted as a case",
    Action.reopen: "reopened: handled again",
}
SENT_BACK = "checked and sent back for more work"  # a verification that failed


async def find_updates(
    session: AsyncSession, start: datetime, end: datetime
) -> list[tuple[TicketHistory, Ticket]]:
    published = [*UPDATE_STATUS, Action.verify]
    statement = (
        select(TicketHistory, Ticket)
        .join(Ticket, Ticket.id == TicketHistory.ticket_id)
        .where(
            channel_clause(),
            TicketHistory.action.in_(published),
            TicketHistory.at.between(start, end),
        )
        .order_by(TicketHistory.at, TicketHistory.id)
        .limit(MAX_RESULTS)
    )
    return [(row, ticket) for row, ticket in await session.execute(statement)]


def render_update(renderer: Renderer, row: TicketHistory, ticket: Ticket) -> dict[str, Any]:
    action, to_status = Action(row.action), Status(row.to_status)
    note: str | None
    if action == Action.verify:
        passed = to_status in CLOSED_STATUSES
        status, note = ("fixed", None) if passed else ("in_progress", SENT_BACK)
    else:
        status, note = UPDATE_STATUS[action], UPDATE_NOTES.get(action)
    description = note.format(level=row.to_level) if note else renderer.note(ticket, to_status)
    if action == Action.dispatch and row.details:
        agency = renderer.agencies.get(str(row.details.get("department_code")), "")
        description = f"dispatched to {agency or 'the department in charge'}"
    return {
        "update_id": str(row.id),
        "service_request_id": request_number(ticket, renderer.settings),
        "status": status,
        "updated_datetime": renderer.moment(row.at),
        "description": description,
        "media_url": None,
    }


# Hiding a ticket from the channel ---------------------------------------------------------

HIDDEN, SHOWN = "hide_from_public", "show_to_public"  # the history rows' actions
VISIBILITY_SETTERS = frozenset({Role.dispatcher, Role.admin})


@dataclass
class Visibility:
    ticket_id: int
    listed: bool  # the channel lists the ticket's kind (filed through it, or public category)
    hidden: bool
    hidden_at: datetime | None
    hidden_by: str | None
    note: str | None


async def visibility(session: AsyncSession, ticket: Ticket) -> Visibility:
    hidden = await session.get(PublicHiddenTicket, ticket.id, populate_existing=True)
    public = select(Category.public).where(Category.code == ticket.category_code)
    listed = ticket.source == "open311" or bool(await session.scalar(public))
    return Visibility(
        ticket_id=ticket.id,
        listed=listed,
        hidden=hidden is not None,
        hidden_at=hidden.hidden_at if hidden else None,
        hidden_by=hidden.hidden_by if hidden else None,
        note=hidden.note if hidden else None,
    )


async def set_hidden(
    session: AsyncSession, user: User, ticket: Ticket, hidden: bool, note: str, now: datetime
) -> tuple[Visibility, bool]:
    """Hides the ticket from the channel or shows it again, with a history row saying who and
    why; returns the visibility now and whether it changed (asking for the state the ticket is
    in already changes nothing). The caller holds the ticket's row locked."""
    if user.role not in VISIBILITY_SETTERS:
        raise Forbidden("only dispatchers and admins may hide a ticket from the public channel")
    current = await session.get(PublicHiddenTicket, ticket.id)
    if (current is not None) == hidden:
        return await visibility(session, ticket), False
    if hidden:
        session.add(
            PublicHiddenTicket(
                ticket_id=ticket.id, hidden_at=now, hidden_by=user.username, note=note
            )
        )
    else:
        await session.delete(current)
    session.add(
        TicketHistory(
            ticket_id=ticket.id,
            at=now,
            actor=user.username,
            action=HIDDEN if hidden else SHOWN,
            from_status=ticket.status,
            to_status=ticket.status,
            from_level=ticket.level,
            to_level=ticket.level,
            note=note,
        )
    )
    await session.flush()
    return await visibility(session, ticket), True


# Retention --------------------------------------------------------------------------------

PURGE_BATCH = 1000


async def purge_contacts(
    session: AsyncSession, settings: Settings, now: datetime, batch: int = PURGE_BATCH
) -> int:
    """Empties the contact details of up to `batch` requests filed more than
    `contact_retention_days` ago and marks them purged; returns how many (the caller commits,
    and calls again while a whole batch was purged). One conditional UPDATE: workers running
    it at once purge each request once (PostgreSQL: each skips the rows another holds)."""
    cutoff = now - timedelta(days=settings.contact_retention_days)
    due = (
        select(Open311Request.ticket_id)
        .where(Open311Request.contact_purged_at.is_(None), Open311Request.requested_at < cutoff)
        .order_by(Open311Request.requested_at)
        .limit(batch)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    result = await session.execute(
        update(Open311Request)
        .where(
            Open311Request.ticket_id.in_(due.scalar_subquery()),
            Open311Request.contact_purged_at.is_(None),
        )
        .values(contact={}, contact_purged_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
