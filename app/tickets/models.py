from collections.abc import Iterable, Mapping
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ColumnElement,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    exists,
    literal_column,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime
from app.tickets.machine import (
    CLOSED_STATUSES,
    GRID_CHECKS,
    HANDLING_STATUSES,
    NOT_ACCEPTED,
    OPEN_STATUSES,
)

# BIGINT on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

STATUSES = (
    "reported",
    "checking",
    "dispatched",
    "in_progress",
    "suspended",
    "feedback",
    "closed",
    "rated",
    "rejected",
    "merged",
)


def _status_in(statuses: Iterable[str]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in sorted(statuses)) + ")"


OPEN_PREDICATE = _status_in(OPEN_STATUSES)
# What waits for someone's next step (`awaiting=me`), each kept by a partial index: a grid's
# tickets to check on site, a department's tickets to handle, an owner unit's reports to
# dispatch and extension requests to decide, a reporter's closed reports to rate (unless they
# resolved them on the spot).
GRID_CHECKS_PREDICATE = _status_in(GRID_CHECKS)
HANDLING_PREDICATE = _status_in(HANDLING_STATUSES)
TO_DISPATCH_PREDICATE = "status = 'reported'"
EXTENSION_ASKED_PREDICATE = "pending_extension_value IS NOT NULL"
AWAITING_RATING_PREDICATE = "status = 'closed' AND self_resolved = false"
URGED_PREDICATE = "urge_count > 0"


def _partial(name: str, predicate: str, *columns: str, include: tuple[str, ...] = ()) -> Index:
    return Index(
        name,
        *columns,
        postgresql_where=text(predicate),
        sqlite_where=text(predicate),
        postgresql_include=list(include),
    )


# What the closure statistics' count of overdue open tickets reads besides the area and the
# reporting time: its measure's columns and the columns it may group by. Carried in the open
# tickets' indexes, it is read from them alone (on PostgreSQL, of the pages VACUUM has marked
# all-visible), without a visit to each ticket's page.
OVERDUE_COUNT_READS = (
    "status",
    "overdue",
    "deadline_at",
    "town_code",
    "community_code",
    "category_code",
    "department_code",
)


class Ticket(Base):
    """A work order (工单). Only `tickets.machine.apply_action` changes `status` after filing."""

    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("reporter", "client_id"),
        CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")", name="status"),
        CheckConstraint("level IN ('community', 'town', 'district')", name="level"),
        CheckConstraint("rating IS NULL OR rating BETWEEN 1 AND 5", name="rating_range"),
        # Lists run newest first, (reported_at, id) descending, optionally narrowed by one of
        # these leading columns.
        Index("ix_tickets_listing", "reported_at", "id"),
        Index("ix_tickets_community_listing", "community_code", "reported_at", "id"),
        Index("ix_tickets_town_listing", "town_code", "reported_at", "id"),
        Index("ix_tickets_district_listing", "district_code", "reported_at", "id"),
        Index("ix_tickets_grid_listing", "grid_code", "reported_at", "id"),
        Index("ix_tickets_department_listing", "department_code", "reported_at", "id"),
        Index("ix_tickets_reporter_listing", "reporter", "reported_at", "id"),
        Index("ix_tickets_category_listing", "category_code", "reported_at", "id"),
        # Duplicate hints and the map around a ticket look for open tickets near a point.
        Index(
            "ix_tickets_open_position",
            "lat",
            "lon",
            postgresql_where=text(OPEN_PREDICATE),
            sqlite_where=text(OPEN_PREDICATE),
        ),
        # Open tickets are few among millions: statistics count the overdue ones of an area
        # through these, a district's (or the whole table's) and a town's.
        _partial(
            "ix_tickets_open",
            OPEN_PREDICATE,
            "reported_at",
            include=("district_code", *OVERDUE_COUNT_READS),
        ),
        _partial(
            "ix_tickets_open_town",
            OPEN_PREDICATE,
            "town_code",
            "reported_at",
            include=tuple(c for c in OVERDUE_COUNT_READS if c != "town_code"),
        ),
        # The duplicates merged into a ticket: a grid worker's scope, and the foreign key's
        # check when a ticket is deleted.
        _partial("ix_tickets_duplicate_of", "duplicate_of IS NOT NULL", "duplicate_of"),
        # To-do lists (`awaiting=me`), each part newest first.
        *(
            _partial(name, predicate, column, "reported_at", "id")
            for name, predicate, column in (
                ("ix_tickets_grid_checks", GRID_CHECKS_PREDICATE, "grid_code"),
                ("ix_tickets_department_handling", HANDLING_PREDICATE, "department_code"),
                ("ix_tickets_owner_to_dispatch", TO_DISPATCH_PREDICATE, "owner_unit_code"),
                ("ix_tickets_owner_extension_asked", EXTENSION_ASKED_PREDICATE, "owner_unit_code"),
                ("ix_tickets_awaiting_rating", AWAITING_RATING_PREDICATE, "reporter"),
            )
        ),
        _partial("ix_tickets_urged", URGED_PREDICATE, "reported_at", "id"),
        # Tickets closed lately near a point (`nearby-tickets`): by closing time, with the
        # position in the index so that the box is checked without reading the rows.
        _partial("ix_tickets_closed_at", "closed_at IS NOT NULL", "closed_at", "lat", "lon"),
        Index(
            "ix_tickets_alarm_at",
            "alarm_at",
            postgresql_where=text("alarm_at IS NOT NULL"),
            sqlite_where=text("alarm_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[UUID | None] = mapped_column(Uuid, default=None)
    source: Mapped[str] = mapped_column(String(16), default="patrol")
    status: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    owner_unit_code: Mapped[str] = mapped_column(ForeignKey("org_units.code"))
    grid_code: Mapped[str] = mapped_column(ForeignKey("org_units.code"))
    # The ancestors of the grid where the ticket was reported: scope and area filters become an
    # equality on one indexed column. Whoever moves an org unit must update these.
    community_code: Mapped[str] = mapped_column(String(32))
    town_code: Mapped[str] = mapped_column(String(32))
    district_code: Mapped[str] = mapped_column(String(32))
    category_code: Mapped[str] = mapped_column(ForeignKey("categories.code"))
    department_code: Mapped[str | None] = mapped_column(
        ForeignKey("departments.code"), default=None
    )
    reporter: Mapped[str | None] = mapped_column(ForeignKey("users.username"), default=None)
    description: Mapped[str] = mapped_column(Text)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    self_resolved: Mapped[bool] = mapped_column(Boolean, default=False)

    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # When the grid's worker answered a check on site (核实: confirm or refute).
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Moves with `version`: the time of the latest change.
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # The limit of the deadline now running (or last run): the dispatch limit while the ticket
    # waits for dispatch, the handling limit after.
    time_limit_value: Mapped[int | None] = mapped_column(Integer, default=None)
    time_limit_unit: Mapped[str | None] = mapped_column(String(16), default=None)
    # The deadline now running (or paused while suspended): when it started, when it turns
    # yellow, when it is due. Kept after it stops, for the record.
    deadline_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    warning_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The scheduler's next look at the ticket (see tickets.deadlines.sync_alarm).
    alarm_stage: Mapped[str | None] = mapped_column(String(16), default=None)
    alarm_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    overdue: Mapped[bool] = mapped_column(Boolean, default=False)

    escalation_count: Mapped[int] = mapped_column(Integer, default=0)
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    extension_count: Mapped[int] = mapped_column(Integer, default=0)
    urge_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reopen_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    pending_extension_value: Mapped[int | None] = mapped_column(Integer, default=None)
    pending_extension_unit: Mapped[str | None] = mapped_column(String(16), default=None)

    rating: Mapped[int | None] = mapped_column(Integer, default=None)
    rating_comment: Mapped[str | None] = mapped_column(Text, default=None)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), default=None)
    # Open tickets of the category near the report when it was filed: [{id, number, distance_m}]
    possible_duplicates: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)

    version: Mapped[int] = mapped_column(Integer)

    # Loaded only where asked for (`service.with_assists`): most reads of a ticket need none.
    assists: Mapped[list["TicketAssist"]] = relationship(
        lazy="raise",
        cascade="all, delete-orphan",
        order_by="(TicketAssist.asked_at, TicketAssist.department_code)",
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


# A list reads rows of these rather than Ticket objects, which cost more to build than to show.
TICKET_COLUMNS = tuple(Ticket.__table__.c)


def read_only_ticket(row: Mapping[str, Any], assists: Iterable[Any] = ()) -> Ticket:
    """A row of `TICKET_COLUMNS` with a Ticket's attributes, to read: each one costs a third of
    a Row's or an ORM object's, and rendering a ticket reads some fifty."""
    return cast(Ticket, SimpleNamespace(**row, assists=list(assists)))


def status_among(
    statuses: Iterable[str], status: ColumnElement[str] | None = None
) -> ColumnElement[bool]:
    """`status IN (...)` with the statuses written into the SQL, as in the partial indexes'
    predicate: the planner can match those indexes, and no list is bound at every execution.
    `status` is the ticket's by default."""
    column = Ticket.status if status is None else status
    return column.in_([literal_column(f"'{s}'") for s in sorted(statuses)])


IS_OPEN = status_among(OPEN_STATUSES)
IS_CLOSED = status_among(CLOSED_STATUSES)
IS_ACCEPTED = ~status_among(NOT_ACCEPTED)
# The partial indexes' predicates as SQL, written the same way so that the planner matches them.


def _sql(predicate: str) -> ColumnElement[bool]:
    return literal_column(predicate, Boolean)


GRID_CHECKS_SQL = _sql(GRID_CHECKS_PREDICATE)
HANDLING_SQL = _sql(HANDLING_PREDICATE)
TO_DISPATCH_SQL = _sql(TO_DISPATCH_PREDICATE)
EXTENSION_ASKED_SQL = _sql(EXTENSION_ASKED_PREDICATE)
AWAITING_RATING_SQL = _sql(AWAITING_RATING_PREDICATE)
URGED: ColumnElement[bool] = _sql(URGED_PREDICATE)


class TicketHistory(Base):
    """One row per change of a ticket, append-only; `actor` is a username or `system`."""

    __tablename__ = "ticket_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16), default=None)
    to_status: Mapped[str] = mapped_column(String(16))
    from_level: Mapped[str | None] = mapped_column(String(16), default=None)
    to_level: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text, default=None)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class TicketAssist(Base):
    """An assisting department's part of a ticket (协办): asked by a dispatch, answered once by
    `assist`. The lead department's feedback waits until every part is done."""

    __tablename__ = "ticket_assists"
    __table_args__ = (
        # The tickets a department assists on (its scope), and its parts still to answer.
        Index("ix_ticket_assists_department", "department_code", "ticket_id"),
    )

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), primary_key=True)
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    done_by: Mapped[str | None] = mapped_column(String(64), default=None)
    note: Mapped[str | None] = mapped_column(Text, default=None)
    # Whether the part was answered before the lead's deadline as it stood then.
    on_time: Mapped[bool | None] = mapped_column(Boolean, default=None)


# Whether a ticket has assisting parts, read with it: most have none, and need no second query.
HAS_ASSISTS = exists().where(TicketAssist.ticket_id == Ticket.id).label("has_assists")
