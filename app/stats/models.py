from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base

# The measures a closure rollup keeps, in the order of `stats.service.Counts`; `overdue_open`
# depends on the time of asking and is always counted from the tickets.
ROLLUP_MEASURES = (
    "reported",
    "accepted",
    "closed",
    "closed_on_time",
    "self_resolved",
    "open",
    "escalated",
    "reworked",
    "reopened",
    "resolved_in_community",
    "rated",
    "satisfied",
    "handling_seconds",
)
# The order in which a rebuild writes rollup rows: a district's (or a town's) rows of a period
# then lie together in the table, as those of each new day do, so that reading a range of
# periods visits few pages.
AREA_ORDER = ("district_code", "town_code", "grain", "period")
NO_DEPARTMENT = ""  # a unique key treats NULLs as distinct, so "none yet" is stored as ""
MONTH, DAY = "m", "d"  # the grains of a rollup row: period YYYY-MM or YYYY-MM-DD


class ClosureMeasures:
    """The columns of a closure rollup row besides its key: the ancestry of its community, and
    the measures of `ROLLUP_MEASURES`."""

    town_code: Mapped[str] = mapped_column(String(32))
    district_code: Mapped[str] = mapped_column(String(32))

    reported: Mapped[int] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer)
    closed: Mapped[int] = mapped_column(Integer)
    closed_on_time: Mapped[int] = mapped_column(Integer)
    self_resolved: Mapped[int] = mapped_column(Integer)
    open: Mapped[int] = mapped_column(Integer)
    escalated: Mapped[int] = mapped_column(Integer)
    reworked: Mapped[int] = mapped_column(Integer)
    reopened: Mapped[int] = mapped_column(Integer, server_default="0")
    resolved_in_community: Mapped[int] = mapped_column(Integer)
    rated: Mapped[int] = mapped_column(Integer)
    satisfied: Mapped[int] = mapped_column(Integer)
    handling_seconds: Mapped[int] = mapped_column(BigInteger)


class ClosureRollup(ClosureMeasures, Base):
    """The closure measures of the tickets reported in one local month (or day), in one
    community, of one category and department. Kept exact by `stats.rollups` in the
    transaction of every ticket change; `gridwork stats rebuild` recomputes it from the tickets.

    A community, not a grid: a district's year is then some 50,000 month rows at most, while
    one community's tickets are few enough to count directly when its grids are asked for.
    Day rows serve the days of a range outside whole months, and day and week groupings."""

    __tablename__ = "closure_rollups"
    __table_args__ = (
        Index("ix_closure_rollups_district", "district_code", "grain", "period"),
        Index("ix_closure_rollups_town", "town_code", "grain", "period"),
    )

    community_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    grain: Mapped[str] = mapped_column(String(1), primary_key=True)  # MONTH or DAY
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    category_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    department_code: Mapped[str] = mapped_column(String(32), primary_key=True)


class CommunityClosureRollup(ClosureMeasures, Base):
    """The sums of one community's `ClosureRollup` rows of one period, all categories and
    departments together, kept with them: what closure statistics read unless grouped by
    category or department (a district's year by month is then a few hundred rows, not tens of
    thousands)."""

    __tablename__ = "community_closure_rollups"
    __table_args__ = (
        Index("ix_community_closure_rollups_district", "district_code", "grain", "period"),
        Index("ix_community_closure_rollups_town", "town_code", "grain", "period"),
    )

    community_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    grain: Mapped[str] = mapped_column(String(1), primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)


class ClosureRollupState(Base):
    """One row once the rollups have been built: the time zone whose months they count. Until
    then, or when the service's time zone differs, statistics are counted from the tickets."""

    __tablename__ = "closure_rollup_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))


# The appraisal figures an appraisal rollup keeps (API.md, Appraisal), of the person, grid or
# department its row is for; `stats.appraisal_rollups` says how each is counted.
APPRAISAL_MEASURES = (
    "reports",
    "valid_reports",
    "public_first",
    "checks",
    "checks_on_time",
    "verifications",
    "verifications_on_time",
    "returned",
    "assists",
    "assists_done",
)


class Party(StrEnum):
    """Whom an appraisal rollup row counts for: a user (by username: the reports they filed,
    the checks and verifications they answered), a grid (the tickets the public filed there
    first) or a department (the tickets it returned, the parts it was asked to assist on)."""

    user = "user"
    grid = "grid"
    department = "department"


class AppraisalRollup(Base):
    """The appraisal figures of one party over the tickets reported in one local month (or
    day) in one community; kept like the closure rollups, in the transaction of every change to
    a ticket, its history or its assisting parts, and rebuilt with them."""

    __tablename__ = "appraisal_rollups"
    __table_args__ = (
        Index("ix_appraisal_rollups_district", "district_code", "grain", "period"),
        Index("ix_appraisal_rollups_town", "town_code", "grain", "period"),
    )

    community_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    grain: Mapped[str] = mapped_column(String(1), primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    party: Mapped[str] = mapped_column(String(16), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    town_code: Mapped[str] = mapped_column(String(32))
    district_code: Mapped[str] = mapped_column(String(32))

    reports: Mapped[int] = mapped_column(Integer)
    valid_reports: Mapped[int] = mapped_column(Integer)
    public_first: Mapped[int] = mapped_column(Integer)
    checks: Mapped[int] = mapped_column(Integer)
    checks_on_time: Mapped[int] = mapped_column(Integer)
    verifications: Mapped[int] = mapped_column(Integer)
    verifications_on_time: Mapped[int] = mapped_column(Integer)
    returned: Mapped[int] = mapped_column(Integer)
    assists: Mapped[int] = mapped_column(Integer)
    assists_done: Mapped[int] = mapped_column(Integer)


class PatrolDays(Base):
    """A grid worker's patrol days (local days with a clock-in inside their own grid): a day
    row (`days` 1) for each such day, a month row counting them. Keyed by period first: an
    appraisal reads a range of periods for every worker of an area."""

    __tablename__ = "patrol_days"

    grain: Mapped[str] = mapped_column(String(1), primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    worker: Mapped[str] = mapped_column(String(64), primary_key=True)
    days: Mapped[int] = mapped_column(Integer)
