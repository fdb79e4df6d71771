from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, bindparam, insert, select, true
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from app.attachments import linking
from app.auth.models import Role, User
from app.config import Settings
from app.direct import DirectStatement, bound_row, row_params
from app.errors import Conflict, Forbidden, IllegalTransition, Invalid, NotFound, StaleVersion
from app.notifications.service import enqueue
from app.orgs.geo import GridMatch, locate_grid
from app.orgs.models import Category, Department, Level, OrgUnit
from app.orgs.service import category_limit, get_by_code, read_category
from app.stats import rollups
from app.tickets import deadlines
from app.tickets.machine import (
    ROLE_ACTIONS,
    TRANSITIONS,
    Action,
    Status,
    available_actions,
)
from app.tickets.models import TICKET_COLUMNS, Ticket, TicketHistory, read_only_ticket
from app.tickets.nearby import possible_duplicates
from app.tickets.numbers import ticket_number
from app.tickets.schemas import (
    ActionIn,
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
from app.timing.limits import TimeLimit, TimeUnit
from app.timing.service import load_calendar

MAX_EXTENSIONS = 2
SYSTEM_ACTOR = "system"
# Who owns a ticket when it is escalated from each level, read off its grid's ancestry.
ESCALATION = {
    Level.community: (Level.town, "town_code"),
    Level.town: (Level.district, "district_code"),
}
LEVEL_DEPTH = {level: depth for depth, level in enumerate(Level)}


def can_escalate(ticket: Ticket) -> bool:
    return Level(ticket.level) in ESCALATION


# Scope ---------------------------------------------------------------------------------------


def visible_clause(user: User) -> ColumnElement[bool]:
    """The tickets a user may see (API.md, "Roles and scope")."""
    role = Role(user.role)
    if role == Role.admin:
        return true()
    if role == Role.grid_worker:  # their reports, and the originals theirs were merged into
        merged_into = select(Ticket.duplicate_of).where(
            Ticket.reporter == user.username, Ticket.duplicate_of.is_not(None)
        )
        return (Ticket.reporter == user.username) | Ticket.id.in_(merged_into.scalar_subquery())
    if role == Role.handler:
        return Ticket.department_code == user.department_code
    assert user.org_unit is not None
    return in_area(user.org_unit)


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


async def get_visible_ticket(session: AsyncSession, user: User, ticket_id: int) -> Ticket:
    ticket = await session.scalar(
        select(Ticket).where(Ticket.id == ticket_id, visible_clause(user))
    )
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} does not exist or is outside your scope")
    return ticket


def _not_yours(user: User, ticket: Ticket) -> str | None:
    """Why a user who sees a ticket may still not act on it: a dispatcher sees tickets reported
    in their area but acts only on those owned in it (not on one escalated above their unit); a
    grid worker follows the original their report was merged into but acts only on their own.
    (A visible ticket's grid lies in the dispatcher's subtree, so its owner does too exactly
    when the owner is not at a higher level.)"""
    if user.role == Role.dispatcher:
        assert user.org_unit is not None
        if LEVEL_DEPTH[Level(ticket.level)] < LEVEL_DEPTH[Level(user.org_unit.level)]:
            return f"the ticket is owned by {ticket.owner_unit_code}, above your unit"
    if user.role == Role.grid_worker and ticket.reporter != user.username:
        return "you may act only on tickets you reported"
    return None


def _refusal(ticket: Ticket, action: Action, now: datetime) -> str | None:
    """Why an action the transition table allows cannot be taken on this ticket now."""
    extending = action in (Action.request_extension, Action.approve_extension)
    if extending and deadlines.is_overdue(ticket, now):
        return "the ticket is overdue: it can no longer be extended"
    if action == Action.request_extension:
        if ticket.pending_extension_value is not None:
            return "an extension request is already waiting for a decision"
        if ticket.extension_count >= MAX_EXTENSIONS:
            return f"a ticket may be extended at most {MAX_EXTENSIONS} times"
    deciding = action in (Action.approve_extension, Action.deny_extension)
    if deciding and ticket.pending_extension_value is None:
        return "there is no extension request to decide"
    if action == Action.escalate and not can_escalate(ticket):
        return "the ticket is already owned at the district level"
    return None


def allowed_actions(ticket: Ticket, user: User, now: datetime) -> list[Action]:
    """What the user may do to the ticket now: role, ownership, status and preconditions."""
    if _not_yours(user, ticket):
        return []
    return [
        action
        for action in available_actions(ticket.status, user.role)
        if _refusal(ticket, action, now) is None
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


def _dispatch_limit(settings: Settings) -> TimeLimit:
    return TimeLimit(value=settings.dispatch_limit_minutes, unit="minutes")


_REPORT_BY_CLIENT_ID = DirectStatement(
    select(*TICKET_COLUMNS).where(
        Ticket.reporter == bindparam("reporter"), Ticket.client_id == bindparam("client_id")
    )
)
# A report is filed in three statements, without the ORM: a flush costs more than they do.
_FILE_REPORT = DirectStatement(
    postgresql.insert(Ticket)
    .values(bound_row(Ticket.__table__))
    .on_conflict_do_nothing(index_elements=[Ticket.reporter, Ticket.client_id])
    .returning(*TICKET_COLUMNS)
)
_ADD_HISTORY = DirectStatement(insert(TicketHistory).values(bound_row(TicketHistory.__table__)))


async def _existing_report(session: AsyncSession, user: User, data: EventIn) -> Ticket | None:
    params = {"reporter": user.username, "client_id": data.client_id}
    row = await _REPORT_BY_CLIENT_ID.first(session, params)
    return None if row is None else read_only_ticket(row)


async def locate(
    session: AsyncSession, settings: Settings, lat: float, lon: float, loc: list[str | int]
) -> GridMatch:
    """The grid a report at the point belongs to (422 at `loc` when it is too far from all)."""
    match = await locate_grid(session, lat, lon, settings.gps_drift_metres)
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
        deadlines.start_deadline(ticket, now, _dispatch_limit(settings), None)
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
    `client_id` returns the ticket filed the first time, also when both arrive at once."""
    if (existing := await _existing_report(session, user, data)) is not None:
        return existing, False
    await linking.check_unused(session, user, data.attachment_ids)
    if data.occurred_at is not None and data.occurred_at > now + timedelta(minutes=5):
        raise Invalid("occurred_at is in the future", loc=["body", "occurred_at"])
    category = await read_category(session, data.category_code, ["body", "category_code"])
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
    filed = await _FILE_REPORT.first(session, row_params(report))
    if filed is None:  # filed meanwhile by a concurrent resend, which has committed
        if (existing := await _existing_report(session, user, data)) is None:
            raise Conflict("the report was being filed at the same time; try again")
        return existing, False
    await rollups.count_filed(session, filed)
    ticket = read_only_ticket(filed)
    await linking.attach(session, user, data.attachment_ids, ticket, "report")
    await _ADD_HISTORY.rows(session, row_params(report_history(ticket, user.username, now, match)))
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
    category = await get_by_code(ctx.session, Category, ticket.category_code)
    department_code = body.department_code or category.default_department_code
    loc: list[str | int] = ["body", "department_code"]
    if department_code is None:
        raise Invalid(
            "department_code is required: the category has no default department", loc=loc
        )
    department = await get_by_code(ctx.session, Department, department_code, loc)
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
    limit = body.time_limit or category_limit(category, ticket.urgent)
    ticket.department_code = department_code
    ticket.dispatched_at = ctx.now
    ticket.pending_extension_value = ticket.pending_extension_unit = None
    deadlines.start_deadline(ticket, ctx.now, limit, await ctx.calendar(limit.unit))
    ctx.details.update(department_code=department_code, time_limit=limit.model_dump(mode="json"))


async def _merge(ctx: ActionContext, ticket: Ticket, body: MergeIn) -> None:
    loc: list[str | int] = ["body", "duplicate_of"]
    if body.duplicate_of == ticket.id:
        raise Invalid("a ticket cannot duplicate itself", loc=loc)
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
    ticket.duplicate_of = original.id


async def _no_effect(ctx: ActionContext, ticket: Ticket, body: ActionIn) -> None:
    return None


async def _return(ctx: ActionContext, ticket: Ticket, body: ActionIn) -> None:
    ctx.details.update(department_code=ticket.department_code)
    ticket.department_code = None
    ticket.pending_extension_value = ticket.pending_extension_unit = None
    deadlines.start_deadline(ticket, ctx.now, _dispatch_limit(ctx.settings), None)


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
    if body.passed:
        ticket.closed_at = ctx.now
        return Status.closed
    ticket.rework_count += 1
    await _restart_deadline(ctx, ticket, ctx.now)
    return Status.in_progress


async def _rate(ctx: ActionContext, ticket: Ticket, body: RateIn) -> None:
    ticket.rating, ticket.rating_comment = body.score, body.comment
    ctx.details.update(score=body.score)


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


NOTIFIED_ACTIONS = {Action.dispatch: "ticket.dispatched", Action.escalate: "ticket.escalated"}


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
        if (reason := _not_yours(user, ticket)) is not None:
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
            allowed_actions=allowed_actions(ticket, user, now) if user else [],
        )
    if (reason := _refusal(ticket, action, now)) is not None:
        raise Conflict(reason)
    before_status, before_level = ticket.status, ticket.level
    deadlines.note_missed_deadline(ticket, now)
    ctx = ActionContext(session, settings, now, user, details={}, _calendar=calendar)
    outcome = await EFFECTS[action](ctx, ticket, body)
    ticket.status = outcome or rule.to or current
    assert ticket.status in rule.targets(current)
    deadlines.sync_alarm(ticket)
    _count_change(ticket)
    if (event := NOTIFIED_ACTIONS.get(action)) is not None:
        enqueue(session, settings, event, ticket, now, {"by": actor_name(user), **ctx.details})
    session.add(
        _history(
            ticket,
            actor_name(user),
            action,
            now,
            before_status,
            before_level,
            body.note,
            ctx.details or None,
        )
    )
    await session.flush()
    return ticket


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
    ticket = await get_visible_ticket(session, user, ticket_id)
    return await apply_action(session, ticket, action, body, user=user, settings=settings, now=now)


# Reading --------------------------------------------------------------------------------------


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
        time_limit=TimeLimit.of(ticket.time_limit_value, ticket.time_limit_unit),
        overdue=deadlines.is_overdue(ticket, now),
        warning=deadlines.warning_of(ticket, now),
        escalation_count=ticket.escalation_count,
        rework_count=ticket.rework_count,
        extension_count=ticket.extension_count,
        pending_extension=TimeLimit.of(
            ticket.pending_extension_value, ticket.pending_extension_unit
        ),
        rating=ticket.rating,
        rating_comment=ticket.rating_comment,
        duplicate_of=ticket.duplicate_of,
        possible_duplicates=ticket.possible_duplicates or [],
        allowed_actions=allowed_actions(ticket, user, now),
        version=ticket.version,
    )
