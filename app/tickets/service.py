from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, NamedTuple, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    CTE,
    ClauseElement,
    ColumnElement,
    String,
    and_,
    bindparam,
    insert,
    inspect,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified, set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from app import reference
from app.attachments import linking
from app.auth.models import Role, User
from app.config import Settings
from app.db import DEFAULT_TIMEZONE, TIMEZONE_KEY
from app.direct import DirectStatement, Row, bound_row, row_params
from app.errors import Conflict, Forbidden, IllegalTransition, Invalid, NotFound, StaleVersion
from app.notifications.service import enqueue
from app.orgs.geo import GridMatch
from app.orgs.models import Category, Department, Level, OrgUnit
from app.orgs.service import category_limit
from app.stats import appraisal_rollups, rollups
from app.stats.appraisal_rollups import HISTORY_FACT_COLUMNS
from app.tickets import deadlines
from app.tickets.machine import (
    ROLE_ACTIONS,
    TRANSITIONS,
    Action,
    Status,
    available_actions,
)
from app.tickets.models import (
    AWAITING_RATING_SQL,
    EXTENSION_ASKED_SQL,
    GRID_CHECKS_SQL,
    HANDLING_SQL,
    HAS_ASSISTS,
    TICKET_COLUMNS,
    TO_DISPATCH_SQL,
    Ticket,
    TicketAssist,
    TicketHistory,
    read_only_ticket,
    status_among,
)
from app.tickets.nearby import distance_m, possible_duplicates
from app.tickets.numbers import ticket_number
from app.tickets.schemas import (
    ActionIn,
    AssistIn,
    AssistOut,
    ConfirmIn,
    DispatchIn,
    EventIn,
    ExtensionIn,
    FeedbackIn,
    MergeIn,
    RateIn,
    TicketOut,
    VerifyIn,
)
from app.timing.calendar import WorkingCalendar
from app.timing.limits import TimeLimit, TimeUnit, add_limit, begin_of
from app.timing.service import load_calendar

MAX_EXTENSIONS = 2
SYSTEM_ACTOR = "system"
# Who owns a ticket when it is escalated from each level, read off its grid's ancestry.
ESCALATION = {
    Level.community: (Level.town, "town_code"),
    Level.town: (Level.district, "district_code"),
}
# By a level's name too (a Level is its name): rendering a list asks it per ticket and action.
LEVEL_DEPTH: dict[str, int] = {level: depth for depth, level in enumerate(Level)}


def can_escalate(ticket: Ticket) -> bool:
    return ticket.level in ESCALATION  # (a Level is its name: no conversion per ticket)


# Scope ---------------------------------------------------------------------------------------


def visible_clause(user: User) -> ColumnElement[bool]:
    """The tickets a user may see (API.md, "Roles and scope")."""
    parts = visible_parts(user)
    return parts[0] if len(parts) == 1 else or_(*parts)


def visible_parts(user: User) -> list[ColumnElement[bool]]:
    """`visible_clause` as conditions that share no ticket, so that a list can read each
    through its own index, newest first."""
    role = Role(user.role)
    if role == Role.admin:
        return [true()]
    if role == Role.grid_worker:
        # their reports; and of the others', the originals theirs were merged into and the
        # rest of their grid's tickets waiting to be checked on site
        merged_into = select(Ticket.duplicate_of).where(
            Ticket.reporter == user.username, Ticket.duplicate_of.is_not(None)
        )
        others = Ticket.reporter.is_distinct_from(user.username)
        originals = Ticket.id.in_(merged_into.scalar_subquery())
        return [
            Ticket.reporter == user.username,
            and_(others, originals),
            and_(others, _grid_checks(user), ~originals),
        ]
    if role == Role.handler:  # as the lead or as an assisting department
        return [
            or_(
                Ticket.department_code == user.department_code,
                Ticket.id.in_(_assisted_by(user.department_code)),
            )
        ]
    assert user.org_unit is not None
    return [in_area(user.org_unit)]


def _grid_checks(user: User) -> ColumnElement[bool]:
    return and_(Ticket.grid_code == user.org_unit_code, GRID_CHECKS_SQL)


def _assisted_by(department_code: str | None, *, pending: bool = False) -> Any:
    parts = select(TicketAssist.ticket_id).where(TicketAssist.department_code == department_code)
    return parts.where(TicketAssist.done_at.is_(None)) if pending else parts


def awaiting(user: User) -> list[ColumnElement[bool]]:
    """The caller's to-do list (`awaiting=me`, API.md), as conditions that share no ticket,
    each kept by a partial index (written as its predicate, so that the planner matches it):
    what waits for their role's next step."""
    role = Role(user.role)
    if role == Role.grid_worker:
        return [_grid_checks(user), and_(Ticket.reporter == user.username, AWAITING_RATING_SQL)]
    if role == Role.handler:
        return [  # the lead is never one of the assisting departments
            and_(Ticket.department_code == user.department_code, HANDLING_SQL),
            and_(Ticket.id.in_(_assisted_by(user.department_code, pending=True)), HANDLING_SQL),
        ]
    if role == Role.dispatcher:
        owned = Ticket.owner_unit_code == user.org_unit_code
        extension_asked = and_(status_among([Status.in_progress]), EXTENSION_ASKED_SQL)
        return [and_(owned, TO_DISPATCH_SQL), and_(owned, extension_asked)]
    return []


AREA_COLUMNS = {
    Level.district: Ticket.district_code,
    Level.town: Ticket.town_code,
    Level.community: Ticket.community_code,
    Level.grid: Ticket.grid_code,
}


def in_area(unit: OrgUnit) -> ColumnElement[bool]:
    """Tickets whose owner unit or grid lies in `unit`'s subtree. The owner is always the
    grid's community or one of its ancestors (escalation only moves it up), so an owner in the
    subtree implies a grid in it, and the grid's ancestry alone decides."""
    return AREA_COLUMNS[Level(unit.level)] == unit.code


def _not_visible(ticket_id: int) -> NotFound:
    return NotFound(f"ticket {ticket_id} does not exist or is outside your scope")


# A caller as bound parameters (`caller_params`), for statements built once per role and unit
# level that serve every caller of those: SQLAlchemy runs a statement object it has run before
# for a fraction of what a new one costs, about a millisecond less for a ticket's row.
_CALLER_NAME = bindparam("caller_name", type_=String)
_CALLER_UNIT = bindparam("caller_unit", type_=String)
_CALLER_DEPARTMENT = bindparam("caller_department", type_=String)


@lru_cache(maxsize=64)
def bound_caller(role: str, level: str | None) -> User:
    """A caller of `role` in a unit of `level`, their name, unit and department bound."""
    unit = None if level is None else SimpleNamespace(level=level, code=_CALLER_UNIT)
    return cast(
        User,
        SimpleNamespace(
            role=role,
            username=_CALLER_NAME,
            org_unit=unit,
            org_unit_code=_CALLER_UNIT,
            department_code=_CALLER_DEPARTMENT,
        ),
    )


def caller_shape(user: User) -> tuple[str, str | None]:
    """The role and unit level of `user`: what `bound_caller` is built of."""
    return user.role, None if user.org_unit is None else user.org_unit.level


def caller_params(user: User) -> dict[str, Any]:
    """The values of a `bound_caller`'s parameters for `user`."""
    return {
        "caller_name": user.username,
        "caller_unit": user.org_unit_code,
        "caller_department": user.department_code,
    }


@lru_cache(maxsize=64)
def _visible_ticket(role: str, level: str | None, columns: Any) -> Any:
    """`columns` of the ticket bound as `ticket_id`, if a caller of this shape may see it."""
    caller = bound_caller(role, level)
    return columns.where(Ticket.id == bindparam("ticket_id"), visible_clause(caller))


@lru_cache(maxsize=64)
def _visible_ticket_row(role: str, level: str | None) -> DirectStatement:
    return DirectStatement(_visible_ticket(role, level, TICKET_ROW), reads=True)


def _visible_ticket_params(user: User, ticket_id: int) -> dict[str, Any]:
    return {"ticket_id": ticket_id, **caller_params(user)}


_TICKET_WITH_ASSISTS_FLAG = select(Ticket, HAS_ASSISTS)


async def get_visible_ticket(
    session: AsyncSession, user: User, ticket_id: int, *, with_assists: bool = False
) -> Ticket:
    """The ticket, with its assisting parts if asked, if the user may see it (404 otherwise)."""
    query = _visible_ticket(*caller_shape(user), _TICKET_WITH_ASSISTS_FLAG)
    found = (await session.execute(query, _visible_ticket_params(user, ticket_id))).first()
    if found is None:
        raise _not_visible(ticket_id)
    ticket, has_assists = found
    if with_assists:
        parts = await assists_of(session, [ticket.id] if has_assists else [])
        set_committed_value(ticket, "assists", parts.get(ticket.id, []))
    return ticket


CHECKS = (Action.confirm, Action.refute)


def _dispatcher_not_yours(user: User, ticket: Ticket, action: Action) -> str | None:
    """A dispatcher sees tickets reported in their area but acts only on those owned in it, not
    on one escalated above their unit. (A visible ticket's grid lies in the dispatcher's
    subtree, so its owner does too exactly when the owner is not at a higher level.)"""
    unit = user.org_unit
    assert unit is not None
    if LEVEL_DEPTH[ticket.level] < LEVEL_DEPTH[unit.level]:
        return f"the ticket is owned by {ticket.owner_unit_code}, above your unit"
    return None


def _grid_worker_not_yours(user: User, ticket: Ticket, action: Action) -> str | None:
    """A grid worker checks and verifies the tickets of their grid and acts otherwise only on
    their own reports (not on the original theirs was merged into)."""
    own_grid = ticket.grid_code == user.org_unit_code
    if action in CHECKS:
        if not own_grid:
            return f"only the workers of grid {ticket.grid_code} check its tickets"
        return None
    own_report = ticket.reporter == user.username
    if action == Action.verify:
        if not (own_report or own_grid):
            return "you may verify only your reports and your grid's tickets"
        return None
    if not own_report:
        return "you may act only on tickets you reported"
    return None


def _handler_not_yours(user: User, ticket: Ticket, action: Action) -> str | None:
    """A handler answers the assisting part of their department and takes every other step
    only for the lead department."""
    if action == Action.assist:
        if _part_of(ticket, user.department_code) is None:
            return f"department {user.department_code} is not asked to assist on this ticket"
    elif ticket.department_code != user.department_code:
        return f"only the lead department {ticket.department_code} may {action} this ticket"
    return None


# Why a user who sees a ticket may still not take an action on it, by role (None: any).
_NOT_YOURS: dict[str, Callable[[User, Ticket, Action], str | None]] = {
    Role.dispatcher: _dispatcher_not_yours,
    Role.grid_worker: _grid_worker_not_yours,
    Role.handler: _handler_not_yours,
}


def _not_yours(user: User, ticket: Ticket, action: Action) -> str | None:
    check = _NOT_YOURS.get(user.role)
    return None if check is None else check(user, ticket, action)


def _part_of(ticket: Ticket, department_code: str | None) -> TicketAssist | None:
    return next((a for a in ticket.assists if a.department_code == department_code), None)


# An action's own preconditions, which the transition table cannot express: each says why the
# action cannot be taken on this ticket now, or None. `user` None is the system.
Precondition = Callable[[Ticket, User | None, Settings, datetime], str | None]


def _extensible(ticket: Ticket, now: datetime) -> str | None:
    if deadlines.is_overdue(ticket, now):
        return "the ticket is overdue: it can no longer be extended"
    return None


def _extension_askable(
    ticket: Ticket, user: User | None, settings: Settings, now: datetime
) -> str | None:
    if (overdue := _extensible(ticket, now)) is not None:
        return overdue
    if ticket.pending_extension_value is not None:
        return "an extension request is already waiting for a decision"
    if ticket.extension_count >= MAX_EXTENSIONS:
        return f"a ticket may be extended at most {MAX_EXTENSIONS} times"
    return None


def _extension_decidable(
    ticket: Ticket, user: User | None, settings: Settings, now: datetime
) -> str | None:
    if ticket.pending_extension_value is None:
        return "there is no extension request to decide"
    return None


def _extension_grantable(
    ticket: Ticket, user: User | None, settings: Settings, now: datetime
) -> str | None:
    return _extensible(ticket, now) or _extension_decidable(ticket, user, settings, now)


def _escalatable(
    ticket: Ticket, user: User | None, settings: Settings, now: datetime
) -> str | None:
    return None if can_escalate(ticket) else "the ticket is already owned at the district level"


def _assists_answered(
    ticket: Ticket, user: User | None, settings: Settings, now: datetime
) -> str | None:
    if pending := [a for a in ticket.assists if a.done_at is None]:
        codes = ", ".join(a.department_code for a in pending)
        return f"waiting for the assisting departments to answer: {codes}"
    return None


def _part_unanswered(
    ticket: Ticket, user: User | None, settings: Settings, now: datetime
) -> str | None:
    part = None if user is None else _part_of(ticket, user.department_code)
    if part is not None and part.done_at is not None:
        return f"department {part.department_code} has already answered its part"
    return None


def _rated_by_another(
    ticket: Ticket, user: User | None, settings: Settings, now: datetime
) -> str | None:
    if ticket.self_resolved and user is not None and ticket.reporter == user.username:
        return "you resolved this ticket on the spot: someone else rates it"
    return None


def _reopenable(ticket: Ticket, user: User | None, settings: Settings, now: datetime) -> str | None:
    assert ticket.closed_at is not None
    if now > ticket.closed_at + timedelta(days=settings.reopen_days):
        return f"the ticket was closed more than {settings.reopen_days} days ago"
    return None


_PRECONDITIONS: dict[str, Precondition] = {
    Action.request_extension: _extension_askable,
    Action.approve_extension: _extension_grantable,
    Action.deny_extension: _extension_decidable,
    Action.escalate: _escalatable,
    Action.feedback: _assists_answered,
    Action.assist: _part_unanswered,
    Action.rate: _rated_by_another,
    Action.reopen: _reopenable,
}


def _refusal(
    ticket: Ticket, action: Action, user: User | None, settings: Settings, now: datetime
) -> str | None:
    """Why an action the transition table allows cannot be taken on this ticket now."""
    precondition = _PRECONDITIONS.get(action)
    return None if precondition is None else precondition(ticket, user, settings, now)


def allowed_actions(ticket: Ticket, user: User, settings: Settings, now: datetime) -> list[Action]:
    """What the user may do to the ticket now: role, ownership, status and preconditions."""
    return [
        action
        for action in available_actions(ticket.status, user.role)
        if _not_yours(user, ticket, action) is None
        and _refusal(ticket, action, user, settings, now) is None
    ]


# Filing ---------------------------------------------------------------------------------------


def _history(
    ticket: Ticket,
    actor: str,
    action: str,
    at: datetime,
    from_status: str | None,
    from_level: str | None,
    note: str | None = None,
    details: dict[str, Any] | None = None,
) -> TicketHistory:
    return TicketHistory(
        ticket_id=ticket.id,
        at=at,
        actor=actor,
        action=action,
        from_status=from_status,
        to_status=ticket.status,
        from_level=from_level,
        to_level=ticket.level,
        note=note,
        details=details,
    )


def _start_dispatch_limit(ticket: Ticket, now: datetime, settings: Settings) -> None:
    """The ticket waits for dispatch from `now` (on the natural clock)."""
    limit = TimeLimit(value=settings.dispatch_limit_minutes, unit="minutes")
    deadlines.start_deadline(ticket, now, limit, None)


_REPORT_BY_CLIENT_ID = DirectStatement(
    select(*TICKET_COLUMNS).where(
        Ticket.reporter == bindparam("reporter"), Ticket.client_id == bindparam("client_id")
    ),
    reads=True,
)
# A report is filed without the ORM (a flush costs more than the statements): the ticket unless
# its reporter filed this client_id already, its history row (bound as `history_<column>`, the
# ticket's id from the insert) and what it adds to the rollups. On PostgreSQL that is one
# statement, the others as data-modifying CTEs of the insert; on SQLite, three.
_INSERT_REPORT = (
    postgresql.insert(Ticket)
    .values(bound_row(Ticket.__table__))
    .on_conflict_do_nothing(index_elements=[Ticket.reporter, Ticket.client_id])
    .returning(*TICKET_COLUMNS)
)
_FILE_REPORT = DirectStatement(_INSERT_REPORT)
_ADD_HISTORY = DirectStatement(
    insert(TicketHistory).values(bound_row(TicketHistory.__table__, "history_"))
)


def _history_after(written: CTE) -> CTE:
    """The history row (bound as `history_<column>`) of the ticket `written` returns the id
    of, as a data-modifying CTE: inserted only if that ticket was written."""
    values: dict[str, Any] = {**bound_row(TicketHistory.__table__, "history_")}
    values["ticket_id"] = written.c.id
    return (
        insert(TicketHistory)
        .from_select(list(values), select(*values.values()).select_from(written))
        .returning(*(TicketHistory.__table__.c[name] for name in HISTORY_FACT_COLUMNS))
        .cte("history")
    )


@lru_cache(maxsize=4)
def _file_report_at_once(timezone: str) -> DirectStatement:
    filed = _INSERT_REPORT.cte("filed")
    counted = rollups.counting_filed(timezone, filed)
    return DirectStatement(select(*filed.c).add_cte(_history_after(filed), *counted))


async def _file_report(
    session: AsyncSession, timezone: str, report: Ticket, history: TicketHistory, *, last: bool
) -> Row | None:
    """Files the report with its history row and its rollup counts, unless its reporter
    filed its client_id already (None). `last`: nothing else is written after it."""
    ticket, entry = row_params(report), row_params(history, "history_")
    if session.get_bind().dialect.name == "postgresql":
        statement = _file_report_at_once(timezone)
        return await statement.first(session, {**ticket, **entry}, alone=last)
    filed = await _FILE_REPORT.first(session, ticket)
    if filed is not None:
        await rollups.count_filed(session, filed)
        await _ADD_HISTORY.rows(session, {**entry, "history_ticket_id": filed["id"]})
    return filed


async def _existing_report(session: AsyncSession, user: User, data: EventIn) -> Ticket | None:
    params = {"reporter": user.username, "client_id": data.client_id}
    row = await _REPORT_BY_CLIENT_ID.first(session, params)
    return None if row is None else read_only_ticket(row)


async def locate(
    session: AsyncSession, settings: Settings, lat: float, lon: float, loc: list[str | int]
) -> GridMatch:
    """The grid a report at the point belongs to (422 at `loc` when it is too far from all)."""
    grids = await reference.grid_map(session)
    match = grids.locate(lat, lon, settings.gps_drift_metres)
    if match is None:
        raise Invalid(
            f"the point is more than {settings.gps_drift_metres:g} m from every grid", loc=loc
        )
    return match


async def new_ticket(
    session: AsyncSession,
    settings: Settings,
    now: datetime,
    category: Category,
    match: GridMatch,
    **fields: Any,
) -> Ticket:
    """A ticket reported now in the matched grid, owned by its community, with the possible
    duplicates flagged and, unless resolved on site, the dispatch limit running. `fields` are
    Ticket columns (description, lat, lon, source, reporter...). Not yet added to the session."""
    district, town, community, grid = match.path.strip("/").split("/")
    ticket = Ticket(
        level=Level.community,
        owner_unit_code=community,
        grid_code=grid,
        community_code=community,
        town_code=town,
        district_code=district,
        category_code=category.code,
        reported_at=now,
        updated_at=now,
        **fields,
    )
    tz = ZoneInfo(settings.timezone)
    ticket.possible_duplicates = await possible_duplicates(
        session,
        ticket,
        category.duplicate_radius_m,
        now,
        lambda t: ticket_number(t, settings.ticket_number_prefix, tz),
    )
    if ticket.self_resolved:
        ticket.status, ticket.closed_at = Status.closed, now
    else:
        ticket.status = Status.reported
        _start_dispatch_limit(ticket, now, settings)
        deadlines.sync_alarm(ticket)
    return ticket


def report_history(
    ticket: Ticket, actor: str, now: datetime, match: GridMatch, **details: Any
) -> TicketHistory:
    """The first history row of a ticket: its report, with how far from its grid it was."""
    if match.distance_m:
        details["grid_distance_m"] = round(match.distance_m, 1)
    return _history(ticket, actor, "report", now, None, None, details=details or None)


async def report_event(
    session: AsyncSession, user: User, data: EventIn, settings: Settings, now: datetime
) -> tuple[Ticket, bool]:
    """Files a grid worker's report as a ticket. Returns (ticket, created); a resend of the same
    `client_id` returns the ticket filed the first time, also when both arrive at once (a
    report with photos looks for it first: its photos are attached already)."""
    if data.attachment_ids and (existing := await _existing_report(session, user, data)):
        return existing, False
    await linking.check_unused(session, user, data.attachment_ids)
    if data.occurred_at is not None and data.occurred_at > now + timedelta(minutes=5):
        raise Invalid("occurred_at is in the future", loc=["body", "occurred_at"])
    snapshot = await reference.current(session)
    category = snapshot.get(Category, data.category_code, ["body", "category_code"])
    match = await locate(session, settings, data.lat, data.lon, ["body", "lat"])
    report = await new_ticket(
        session,
        settings,
        now,
        category,
        match,
        client_id=data.client_id,
        source="patrol",
        reporter=user.username,
        description=data.description,
        lat=data.lat,
        lon=data.lon,
        urgent=data.urgent,
        self_resolved=data.resolved_on_site,
        occurred_at=data.occurred_at,
    )
    placed = {"location_source": data.location_source, "accuracy_m": data.accuracy_m}
    placed = {name: value for name, value in placed.items() if value is not None}
    history = report_history(report, user.username, now, match, **placed)
    filed = await _file_report(
        session, settings.timezone, report, history, last=not data.attachment_ids
    )
    if filed is None:  # a resend, or filed meanwhile by a concurrent one, which has committed
        if (existing := await _existing_report(session, user, data)) is None:
            raise Conflict("the report was being filed at the same time; try again")
        return existing, False
    ticket = read_only_ticket(filed)
    await linking.attach(session, user, data.attachment_ids, ticket, "report")
    return ticket, True


# Transitions ----------------------------------------------------------------------------------


@dataclass
class ActionContext:
    session: AsyncSession
    settings: Settings
    now: datetime
    user: User | None  # None: the system (the scheduler)
    details: dict[str, Any]  # recorded with the history row
    _calendar: WorkingCalendar | None = None

    async def calendar(self, *units: str | None) -> WorkingCalendar | None:
        """The working calendar when one of `units` counts working time (loaded once)."""
        if not any(unit and TimeUnit(unit).is_working for unit in units):
            return None
        if self._calendar is None:
            self._calendar = await load_calendar(self.session, self.settings)
        return self._calendar


Effect = Callable[[ActionContext, Ticket, Any], Awaitable[Status | None]]


async def _dispatch(ctx: ActionContext, ticket: Ticket, body: DispatchIn) -> None:
    snapshot = await reference.current(ctx.session)
    category = snapshot.get(Category, ticket.category_code)
    department_code = body.department_code or category.default_department_code
    loc: list[str | int] = ["body", "department_code"]
    if department_code is None:
        raise Invalid(
            "department_code is required: the category has no default department", loc=loc
        )
    department = snapshot.get(Department, department_code, loc)
    _check_covers(department, ticket, loc)
    redispatch = ticket.status in (Status.dispatched, Status.in_progress)
    if redispatch and department_code == ticket.department_code and _changes_nothing(body):
        raise Conflict(
            f"the ticket is already dispatched to {department_code}: a re-dispatch names another "
            "department, a time_limit or assisting_department_codes"
        )
    limit = body.time_limit or category_limit(category, ticket.urgent)
    assisting = await _assisting_departments(ctx, ticket, department, body)
    ticket.department_code = department_code
    ticket.dispatched_at = ctx.now
    ticket.pending_extension_value = ticket.pending_extension_unit = None
    deadlines.start_deadline(ticket, ctx.now, limit, await ctx.calendar(limit.unit))
    ctx.details.update(department_code=department_code, time_limit=limit.model_dump(mode="json"))
    if assisting is not None:
        ctx.details.update(assisting_department_codes=assisting)
        kept = {a.department_code: a for a in ticket.assists if a.department_code in assisting}
        ticket.assists = [
            kept.get(code) or TicketAssist(department_code=code, asked_at=ctx.now)
            for code in assisting
        ]


def _changes_nothing(body: DispatchIn) -> bool:
    """A dispatch that names no limit and no assisting departments: sent again to the ticket's
    department, it would only restart the clock (a double click)."""
    return body.time_limit is None and body.assisting_department_codes is None


def _check_covers(department: Department, ticket: Ticket, loc: list[str | int]) -> None:
    """A ticket goes only to departments of its grid's community, town or district."""
    if department.org_unit_code not in (
        ticket.community_code,
        ticket.town_code,
        ticket.district_code,
    ):
        raise Invalid(
            f"department {department.code} belongs to {department.org_unit_code}, which does not "
            f"cover grid {ticket.grid_code}",
            loc=loc,
        )


async def _assisting_departments(
    ctx: ActionContext, ticket: Ticket, lead: Department, body: DispatchIn
) -> list[str] | None:
    """The checked new list of assisting departments, or None when the list stays as it is
    (a kept list must not name the new lead either)."""
    given = body.assisting_department_codes
    codes = [a.department_code for a in ticket.assists] if given is None else given
    loc: list[str | int] = ["body", "assisting_department_codes"]
    if lead.code in codes:
        raise Invalid(
            f"the lead department {lead.code} cannot also assist"
            + ("" if given is not None else " (it assists now: give the new list)"),
            loc=loc,
        )
    if given is None:
        return None
    snapshot = await reference.current(ctx.session)
    for index, code in enumerate(given):
        department = snapshot.get(Department, code, [*loc, index])
        _check_covers(department, ticket, [*loc, index])
    return given


async def _merge(ctx: ActionContext, ticket: Ticket, body: MergeIn) -> None:
    """Into a live ticket of the same category close by, not itself merged. Both tickets are
    locked in id order: of two dispatchers merging A into B and B into A at once, the second
    finds its original merged."""
    loc: list[str | int] = ["body", "duplicate_of"]
    if body.duplicate_of == ticket.id:
        raise Invalid("a ticket cannot duplicate itself", loc=loc)
    both = select(Ticket.id).where(Ticket.id.in_([ticket.id, body.duplicate_of]))
    await ctx.session.execute(both.order_by(Ticket.id).with_for_update())
    visible = visible_clause(ctx.user) if ctx.user else true()
    original = await ctx.session.scalar(
        select(Ticket).where(Ticket.id == body.duplicate_of, visible)
    )
    if original is None:
        raise Invalid(
            f"ticket {body.duplicate_of} does not exist or is outside your scope", loc=loc
        )
    if original.status in (Status.rejected, Status.merged):
        raise Invalid(
            f"ticket {original.id} is {original.status}: merge into a live ticket", loc=loc
        )
    if original.category_code != ticket.category_code:
        raise Invalid(
            f"ticket {original.id} is of category {original.category_code}, not "
            f"{ticket.category_code}",
            loc=loc,
        )
    apart = distance_m(ticket.lat, ticket.lon, original.lat, original.lon)
    if apart > ctx.settings.merge_max_distance_metres:
        raise Invalid(
            f"ticket {original.id} is {apart:.0f} m away: a duplicate is merged only into a "
            f"ticket within {ctx.settings.merge_max_distance_metres:g} m",
            loc=loc,
        )
    ticket.duplicate_of = original.id
    ctx.details.update(distance_m=round(apart, 1))


async def _no_effect(ctx: ActionContext, ticket: Ticket, body: ActionIn) -> None:
    return None


async def _return(ctx: ActionContext, ticket: Ticket, body: ActionIn) -> None:
    ctx.details.update(department_code=ticket.department_code)
    ticket.department_code = None
    ticket.pending_extension_value = ticket.pending_extension_unit = None
    _start_dispatch_limit(ticket, ctx.now, ctx.settings)


async def _suspend(ctx: ActionContext, ticket: Ticket, body: ActionIn) -> None:
    ticket.suspended_at = ctx.now


async def _resume(ctx: ActionContext, ticket: Ticket, body: ActionIn) -> None:
    assert ticket.suspended_at is not None
    calendar = await ctx.calendar(ticket.time_limit_unit)
    paused = deadlines.resume_deadline(ticket, ticket.suspended_at, ctx.now, calendar)
    ticket.suspended_at = None
    ctx.details.update(paused_seconds=int(paused.total_seconds()))


async def _request_extension(ctx: ActionContext, ticket: Ticket, body: ExtensionIn) -> None:
    ticket.pending_extension_value = body.time_limit.value
    ticket.pending_extension_unit = body.time_limit.unit
    ctx.details.update(time_limit=body.time_limit.model_dump(mode="json"))


def _take_pending_extension(ticket: Ticket) -> TimeLimit:
    pending = TimeLimit.of(ticket.pending_extension_value, ticket.pending_extension_unit)
    assert pending is not None  # see _refusal
    ticket.pending_extension_value = ticket.pending_extension_unit = None
    return pending


async def _approve_extension(ctx: ActionContext, ticket: Ticket, body: ActionIn) -> None:
    extension = _take_pending_extension(ticket)
    calendar = await ctx.calendar(extension.unit, ticket.time_limit_unit)
    deadlines.extend_deadline(ticket, extension, calendar)
    ticket.extension_count += 1
    ctx.details.update(time_limit=extension.model_dump(mode="json"))


async def _deny_extension(ctx: ActionContext, ticket: Ticket, body: ActionIn) -> None:
    _take_pending_extension(ticket)


async def _attach(ctx: ActionContext, ticket: Ticket, ids: list[str], stage: str) -> None:
    assert ctx.user is not None  # photos come with a person's action
    await linking.check_unused(ctx.session, ctx.user, ids)
    await linking.attach(ctx.session, ctx.user, ids, ticket, stage)


async def _feedback(ctx: ActionContext, ticket: Ticket, body: FeedbackIn) -> None:
    await _attach(ctx, ticket, body.attachment_ids, "feedback")
    ticket.feedback_at = ctx.now


async def _verify(ctx: ActionContext, ticket: Ticket, body: VerifyIn) -> Status:
    await _attach(ctx, ticket, body.attachment_ids, "verify")
    ctx.details.update(passed=body.passed)
    if ticket.feedback_at is not None:  # for the appraisal: verified within the verify limit?
        limit = ctx.settings.verify_time_limit
        calendar = await ctx.calendar(limit.unit)
        due = add_limit(begin_of(ticket.feedback_at, limit.unit, calendar), limit, calendar)
        ctx.details.update(due_at=due.isoformat(), on_time=ctx.now <= due)
    if body.passed:
        ticket.closed_at = ctx.now
        return Status.closed
    ticket.rework_count += 1
    await _restart_deadline(ctx, ticket, ctx.now)
    return Status.in_progress


async def _rate(ctx: ActionContext, ticket: Ticket, body: RateIn) -> None:
    ticket.rating, ticket.rating_comment = body.score, body.comment
    ctx.details.update(score=body.score)


async def _request_check(ctx: ActionContext, ticket: Ticket, body: ActionIn) -> None:
    limit = ctx.settings.check_time_limit
    deadlines.start_deadline(ticket, ctx.now, limit, await ctx.calendar(limit.unit))
    assert ticket.deadline_at is not None
    deadline_at = ticket.deadline_at.isoformat()
    ctx.details.update(time_limit=limit.model_dump(mode="json"), deadline_at=deadline_at)


async def _judge_check(ctx: ActionContext, ticket: Ticket) -> None:
    """Records, for the appraisal, the check deadline set by the `request_check` that began
    this check (an escalation meanwhile starts a fresh deadline: the check is still judged by
    the first) and whether the answer came before it."""
    asked = await ctx.session.scalar(
        select(TicketHistory.details)
        .where(TicketHistory.ticket_id == ticket.id, TicketHistory.action == Action.request_check)
        .order_by(TicketHistory.id.desc())
        .limit(1)
    )
    recorded = (asked or {}).get("deadline_at")
    deadline = datetime.fromisoformat(recorded) if recorded else ticket.deadline_at
    if deadline is not None:
        ctx.details.update(deadline_at=deadline.isoformat(), on_time=ctx.now < deadline)


async def _confirm(ctx: ActionContext, ticket: Ticket, body: ConfirmIn) -> None:
    await _attach(ctx, ticket, body.attachment_ids, "check")
    await _judge_check(ctx, ticket)
    ticket.checked_at = ctx.now
    _start_dispatch_limit(ticket, ctx.now, ctx.settings)


async def _refute(ctx: ActionContext, ticket: Ticket, body: ActionIn) -> None:
    await _judge_check(ctx, ticket)
    ticket.checked_at = ctx.now


async def _assist(ctx: ActionContext, ticket: Ticket, body: AssistIn) -> None:
    assert ctx.user is not None
    part = _part_of(ticket, ctx.user.department_code)
    assert part is not None  # see _not_yours
    await _attach(ctx, ticket, body.attachment_ids, "assist")
    part.done_at, part.done_by, part.note = ctx.now, ctx.user.username, body.note
    part.on_time = ticket.deadline_at is None or ctx.now <= ticket.deadline_at
    ctx.details.update(department_code=part.department_code, on_time=part.on_time)


async def _urge(ctx: ActionContext, ticket: Ticket, body: ActionIn) -> None:
    ticket.urge_count += 1


async def _reopen(ctx: ActionContext, ticket: Ticket, body: ActionIn) -> Status:
    """Back to the last department with a fresh deadline of the last handling limit, or to
    dispatch when no department ever handled it (resolved on site). The closing and the
    rating stay in the history."""
    assert ticket.closed_at is not None
    ctx.details.update(closed_at=ticket.closed_at.isoformat(), rating=ticket.rating)
    ticket.closed_at = ticket.rating = ticket.rating_comment = None
    ticket.reopen_count += 1
    if ticket.department_code is None:
        _start_dispatch_limit(ticket, ctx.now, ctx.settings)
        return Status.reported
    ticket.dispatched_at = ctx.now
    await _restart_deadline(ctx, ticket, ctx.now)
    return Status.dispatched


async def _escalate(ctx: ActionContext, ticket: Ticket, body: ActionIn) -> None:
    level, owner_column = ESCALATION[Level(ticket.level)]
    ticket.level, ticket.owner_unit_code = level, getattr(ticket, owner_column)
    ticket.escalation_count += 1
    ticket.pending_extension_value = ticket.pending_extension_unit = None
    if deadlines.is_running(ticket):
        await _restart_deadline(ctx, ticket, ctx.now)
    elif ticket.status == Status.suspended and ticket.deadline_at is not None:
        # A fresh deadline that starts running when handling resumes: the paused one, missed
        # or not, is settled by this escalation.
        assert ticket.suspended_at is not None
        await _restart_deadline(ctx, ticket, ticket.suspended_at)


async def _restart_deadline(ctx: ActionContext, ticket: Ticket, start: datetime) -> None:
    """A fresh deadline of the limit that ran last (re-work, escalation)."""
    limit = TimeLimit.of(ticket.time_limit_value, ticket.time_limit_unit)
    assert limit is not None
    deadlines.start_deadline(ticket, start, limit, await ctx.calendar(limit.unit))


NOTIFIED_ACTIONS = {
    Action.dispatch: "ticket.dispatched",
    Action.escalate: "ticket.escalated",
    Action.request_check: "ticket.check_requested",
    Action.confirm: "ticket.confirmed",
    Action.refute: "ticket.refuted",
    Action.assist: "ticket.assisted",
    Action.urge: "ticket.urged",
    Action.reopen: "ticket.reopened",
}


def actor_name(user: User | None) -> str:
    return user.username if user else SYSTEM_ACTOR


EFFECTS: dict[Action, Effect] = {
    Action.dispatch: _dispatch,
    Action.reject: _no_effect,
    Action.merge: _merge,
    Action.claim: _no_effect,
    Action.return_: _return,
    Action.suspend: _suspend,
    Action.resume: _resume,
    Action.request_extension: _request_extension,
    Action.approve_extension: _approve_extension,
    Action.deny_extension: _deny_extension,
    Action.feedback: _feedback,
    Action.verify: _verify,
    Action.rate: _rate,
    Action.escalate: _escalate,
    Action.request_check: _request_check,
    Action.confirm: _confirm,
    Action.refute: _refute,
    Action.assist: _assist,
    Action.urge: _urge,
    Action.reopen: _reopen,
}


async def apply_action(
    session: AsyncSession,
    ticket: Ticket,
    action: Action,
    body: ActionIn,
    *,
    user: User | None,
    settings: Settings,
    now: datetime,
    calendar: WorkingCalendar | None = None,
) -> Ticket:
    """The one place a ticket changes status. Checks the caller's role and ownership (403),
    `expected_version` and the transition table (409), the action's own preconditions (409);
    applies its effect and appends a history row. `user` None is the system. The caller
    commits; a concurrent change makes the flush fail with StaleDataError (409)."""
    if user is not None:
        role = Role(user.role)
        if action not in ROLE_ACTIONS[role]:
            raise Forbidden(f"a {role} may not {action} tickets")
        if (reason := _not_yours(user, ticket, action)) is not None:
            raise Forbidden(reason)
    if body.expected_version is not None and body.expected_version != ticket.version:
        raise StaleVersion(
            f"the ticket is at version {ticket.version}, not {body.expected_version}",
            current_version=ticket.version,
        )
    current = Status(ticket.status)
    rule = TRANSITIONS.get((current, action))
    if rule is None:
        raise IllegalTransition(
            f"cannot {action} a ticket that is {current}",
            current_status=current,
            allowed_actions=allowed_actions(ticket, user, settings, now) if user else [],
        )
    if (reason := _refusal(ticket, action, user, settings, now)) is not None:
        raise Conflict(reason)
    before_status, before_level = ticket.status, ticket.level
    deadlines.note_missed_deadline(ticket, now)
    ctx = ActionContext(session, settings, now, user, details={}, _calendar=calendar)
    with session.no_autoflush:  # one UPDATE per change: `version` counts the changes
        outcome = await EFFECTS[action](ctx, ticket, body)
    ticket.status = outcome or rule.to or current
    assert ticket.status in rule.targets(current)
    ticket.updated_at = now
    deadlines.sync_alarm(ticket)
    _count_change(ticket)
    if (event := NOTIFIED_ACTIONS.get(action)) is not None:
        enqueue(session, settings, event, ticket, now, {"by": actor_name(user), **ctx.details})
    history = _history(
        ticket,
        actor_name(user),
        action,
        now,
        before_status,
        before_level,
        body.note,
        ctx.details or None,
    )
    if not await _write_at_once(session, ticket, history):
        session.add(history)
        await session.flush()
    return ticket


async def _write_at_once(session: AsyncSession, ticket: Ticket, history: TicketHistory) -> bool:
    """On PostgreSQL, when the change is the ticket's columns and its history row alone (no
    other row pending, no related collection changed), writes it in one statement: the UPDATE
    checking `version` as the flush's would, with the history row and what the change moves in
    the closure and appraisal rollups, and marks the ticket as stored. False when the flush has to
    write the change. In a write request that has not begun writing, it is committed as it
    runs: an action is the request's last write (`app.db.RequestWrites`)."""
    if session.get_bind().dialect.name != "postgresql" or session.new or session.deleted:
        return False
    if len(session.dirty) > 1:
        return False
    changed = _changed_columns(ticket)
    if changed is None:
        return False
    version = ticket.version
    params = {f"set_{name}": value for name, value in changed.items()}
    params.update(row_params(history, "history_"), where_id=ticket.id, where_version=version)
    closure = rollups.moves(ticket)
    if closure:
        params.update(rollups.moving_params(ticket))
    fact_rows, fact_params = appraisal_rollups.moving(ticket)
    params.update(fact_params)
    moved = Moved(closure, fact_rows, appraisal_rollups.counts_history(history.action))
    timezone = session.info.get(TIMEZONE_KEY, DEFAULT_TIMEZONE)
    statement = _update_with_history(frozenset(changed), timezone, moved)
    written = await statement.first(session, params, autoflush=False, alone=True)
    if written is None:
        raise StaleDataError(f"ticket {ticket.id} was changed meanwhile (version {version})")
    set_committed_value(ticket, "version", version + 1)
    stored = inspect(ticket)  # as it now is in the database: no flush looks at it again
    stored._commit_all(stored.dict, session.identity_map)
    return True


def _changed_columns(ticket: Ticket) -> dict[str, Any] | None:
    """The ticket's changed columns and their new values (None when one is a SQL expression,
    or a related collection has changed: only the flush writes those)."""
    state = inspect(ticket)
    touched = list(state.committed_state)  # set since loaded: only these can have changed
    related = state.mapper.relationships
    if any(key in related and state.attrs[key].history.has_changes() for key in touched):
        return None
    changed = {}
    for key in touched:
        history = state.attrs[key].history
        if not history.has_changes():
            continue
        value = history.added[0] if history.added else None
        if isinstance(value, ClauseElement):
            return None
        changed[key] = value
    return changed


class Moved(NamedTuple):
    """What a change moves in the rollups: the closure rollups, the ticket's appraisal facts
    (as how many signed rows: 0, or out and in) and its history row's."""

    closure: bool
    ticket_facts: int
    history_facts: bool


@lru_cache(maxsize=256)
def _update_with_history(columns: frozenset[str], timezone: str, moved: Moved) -> DirectStatement:
    """The ticket's UPDATE of `columns` (bound as `set_<column>`) if it is still at
    `where_version`, and its history row (bound as `history_<column>`) if it was updated, and
    what the change moves in the rollups (their upkeep's parameters, in `timezone`)."""
    table = Ticket.__table__.c
    values = {name: bindparam(f"set_{name}", type_=table[name].type) for name in sorted(columns)}
    updated = (
        update(Ticket)
        .where(Ticket.id == bindparam("where_id"), Ticket.version == bindparam("where_version"))
        .values(**values, version=Ticket.version + 1)
        .returning(Ticket.id)
        .cte("updated")
    )
    history = _history_after(updated)
    upkeep = rollups.moving_after(timezone, updated) if moved.closure else []
    if moved.ticket_facts or moved.history_facts:
        counted = history if moved.history_facts else None
        upkeep.append(
            appraisal_rollups.moving_after(timezone, updated, moved.ticket_facts, counted)
        )
    return DirectStatement(select(updated.c.id).add_cte(history, *upkeep))


# A column the statistics rollups do not read: flagging it costs their upkeep nothing.
CHANGE_MARKER = "alarm_at"


def _count_change(ticket: Ticket) -> None:
    """Makes the flush UPDATE the ticket even when the change left every column as it was (a
    re-dispatch to the same department at the same instant): the UPDATE checks and bumps
    `version`, so a change decided on a stale copy fails with 409 instead of being recorded,
    and `version` counts every change."""
    flag_modified(ticket, CHANGE_MARKER)


async def record_system_change(
    session: AsyncSession, ticket: Ticket, action: str, now: datetime
) -> None:
    """A change the scheduler makes besides the actions (a warning, a miss at the top level):
    the ticket's new state and its history row, flushed together."""
    deadlines.sync_alarm(ticket)
    ticket.updated_at = now
    session.add(_history(ticket, SYSTEM_ACTOR, action, now, ticket.status, ticket.level))
    await session.flush()


async def perform_action(
    session: AsyncSession,
    user: User,
    ticket_id: int,
    action: Action,
    body: ActionIn,
    settings: Settings,
    now: datetime,
) -> Ticket:
    """A user's action on a ticket in their scope (404 outside it)."""
    ticket = await get_visible_ticket(session, user, ticket_id, with_assists=True)
    return await apply_action(session, ticket, action, body, user=user, settings=settings, now=now)


# Reading --------------------------------------------------------------------------------------


# A ticket to read as a row: its columns and whether it has assisting parts.
TICKET_ROW = select(*TICKET_COLUMNS, HAS_ASSISTS)


async def read_only_tickets(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> list[Ticket]:
    """Rows of `TICKET_ROW`, as dicts, as tickets to read, with their assisting parts (read for
    those that have some)."""
    assists = await assists_of(session, [row["id"] for row in rows if row["has_assists"]])
    return [read_only_ticket(row, assists.get(row["id"], ())) for row in rows]


async def read_visible_ticket(session: AsyncSession, user: User, ticket_id: int) -> Ticket:
    """The ticket with its assisting parts, to read, if the user may see it (404 otherwise)."""
    row = await _visible_ticket_row(*caller_shape(user)).first(
        session, _visible_ticket_params(user, ticket_id)
    )
    if row is None:
        raise _not_visible(ticket_id)
    (ticket,) = await read_only_tickets(session, [dict(row)])
    return ticket


async def assists_of(session: AsyncSession, ticket_ids: list[int]) -> dict[int, list[TicketAssist]]:
    """The assisting parts of several tickets at once (those of a list page that have some)."""
    parts: dict[int, list[TicketAssist]] = {}
    if ticket_ids:
        query = (
            select(TicketAssist)
            .where(TicketAssist.ticket_id.in_(ticket_ids))
            .order_by(TicketAssist.asked_at, TicketAssist.department_code)
        )
        for part in await session.scalars(query):
            parts.setdefault(part.ticket_id, []).append(part)
    return parts


def render(ticket: Ticket, user: User, settings: Settings, now: datetime) -> TicketOut:
    """The ticket as `user` sees it now."""
    tz = ZoneInfo(settings.timezone)
    return TicketOut(
        id=ticket.id,
        number=ticket_number(ticket, settings.ticket_number_prefix, tz),
        status=ticket.status,  # validated into a Status
        level=ticket.level,
        owner_unit_code=ticket.owner_unit_code,
        grid_code=ticket.grid_code,
        category_code=ticket.category_code,
        description=ticket.description,
        lat=ticket.lat,
        lon=ticket.lon,
        urgent=ticket.urgent,
        reporter=ticket.reporter,
        department_code=ticket.department_code,
        source=ticket.source,
        self_resolved=ticket.self_resolved,
        occurred_at=ticket.occurred_at,
        reported_at=ticket.reported_at,
        dispatched_at=ticket.dispatched_at,
        deadline_at=ticket.deadline_at,
        feedback_at=ticket.feedback_at,
        closed_at=ticket.closed_at,
        checked_at=ticket.checked_at,
        updated_at=ticket.updated_at,
        time_limit=TimeLimit.of(ticket.time_limit_value, ticket.time_limit_unit),
        overdue=deadlines.is_overdue(ticket, now),
        warning=deadlines.warning_of(ticket, now),
        escalation_count=ticket.escalation_count,
        rework_count=ticket.rework_count,
        extension_count=ticket.extension_count,
        urge_count=ticket.urge_count,
        reopen_count=ticket.reopen_count,
        assists=[AssistOut.model_validate(a) for a in ticket.assists],
        pending_extension=TimeLimit.of(
            ticket.pending_extension_value, ticket.pending_extension_unit
        ),
        rating=ticket.rating,
        rating_comment=ticket.rating_comment,
        duplicate_of=ticket.duplicate_of,
        possible_duplicates=ticket.possible_duplicates or [],
        allowed_actions=allowed_actions(ticket, user, settings, now),
        version=ticket.version,
    )
