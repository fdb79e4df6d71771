"""Closure statistics (结案率, 按期结案率, 返工率, in-community resolution) over the tickets in an
area and a range of reporting times.

The rollups (`stats.rollups`, per community, category and department, and their sums per
community) hold whole local months and days: a range is read from month rows for its whole
months (unless grouped by day or week), from day rows for its other whole days, and from the
tickets for parts of days. A community's grids, a grid, and
`overdue_open` (which moves with the clock) are always counted from the tickets.
Both paths sum the same measures (`stats.measures`), so they give the same numbers.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, bindparam, false, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import UTCDateTime
from app.direct import DirectStatement
from app.orgs.models import Department, Level, OrgUnit
from app.stats import measures, rollups
from app.stats.models import (
    DAY,
    MONTH,
    NO_DEPARTMENT,
    ROLLUP_MEASURES,
    ClosureRollup,
    CommunityClosureRollup,
)
from app.stats.schemas import (
    ClosureRow,
    ClosureStats,
    GroupBy,
    RankBy,
    Ranking,
    RankingRow,
    RankingWeights,
)
from app.tickets.models import Ticket
from app.tickets.service import AREA_COLUMNS, in_area

TIME_GROUPS = (GroupBy.day, GroupBy.week, GroupBy.month)
# The column naming the child of a unit of each level under which a ticket (or rollup row)
# counts; a grid's only "child" is itself.
CHILD_COLUMN = {
    Level.district: "town_code",
    Level.town: "community_code",
    Level.community: "grid_code",
    Level.grid: "grid_code",
}


@dataclass
class Counts:
    reported: int = 0
    accepted: int = 0
    closed: int = 0
    closed_on_time: int = 0
    self_resolved: int = 0
    open: int = 0
    overdue_open: int = 0
    escalated: int = 0
    reworked: int = 0
    reopened: int = 0
    resolved_in_community: int = 0
    rated: int = 0
    satisfied: int = 0
    handling_seconds: int = 0

    @classmethod
    def of(cls, stored: Sequence[Any], overdue_open: Any = 0) -> "Counts":
        values = zip(ROLLUP_MEASURES, stored, strict=True)
        return cls(**{name: int(v or 0) for name, v in values}, overdue_open=int(overdue_open or 0))

    def add(self, other: "Counts") -> None:
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def row(self, key: str | None) -> ClosureRow:
        def rate(part: int, whole: int) -> float | None:
            return part / whole if whole else None

        return ClosureRow(
            key=key,
            reported=self.reported,
            accepted=self.accepted,
            closed=self.closed,
            closed_on_time=self.closed_on_time,
            closure_rate=rate(self.closed, self.accepted),
            on_time_closure_rate=rate(self.closed_on_time, self.accepted),
            self_resolved=self.self_resolved,
            open=self.open,
            overdue_open=self.overdue_open,
            escalated=self.escalated,
            reworked=self.reworked,
            rework_rate=rate(self.reworked, self.accepted),
            reopened=self.reopened,
            reopen_rate=rate(self.reopened, self.accepted),
            resolved_in_community=self.resolved_in_community,
            in_community_rate=rate(self.resolved_in_community, self.closed),
            rated=self.rated,
            satisfied=self.satisfied,
            satisfaction_rate=rate(self.satisfied, self.rated),
            avg_handling_hours=(
                self.handling_seconds / 3600 / self.closed if self.closed else None
            ),
        )


Groups = dict[str | None, Counts]


def _fold(key: str, group_by: GroupBy) -> str:
    """A day (or, from the rollups, a month) into the time group it belongs to."""
    if group_by == GroupBy.month:
        return key[:7]
    if group_by == GroupBy.day:
        return key
    year, week, _ = date.fromisoformat(key).isocalendar()
    return f"{year}-W{week:02d}"


Span = tuple[datetime, datetime]


def _local_start(moment: datetime, zone: ZoneInfo, unit: str, later: int = 0) -> datetime:
    """The start of the local day or month holding `moment`, or of the `later`th after it."""
    local = moment.astimezone(zone).replace(tzinfo=None)
    if unit == "month":
        months = local.year * 12 + local.month - 1 + later
        start = datetime(months // 12, months % 12 + 1, 1)
    else:
        start = datetime(local.year, local.month, local.day) + timedelta(days=later)
    return start.replace(tzinfo=zone).astimezone(UTC)


def _within(since: datetime, until: datetime, zone: ZoneInfo, unit: str) -> Span | None:
    """The first and the last local day (or month) boundary in [since, until], if they differ."""
    first = _local_start(since, zone, unit)
    if first < since:
        first = _local_start(since, zone, unit, 1)
    end = _local_start(until, zone, unit)
    return (first, end) if first < end else None


@dataclass
class Spans:
    """[since, until) cut into whole local months, whole local days outside them, and the
    rest (parts of days)."""

    months: Span | None
    days: list[Span]
    rest: list[Span]

    @property
    def covered(self) -> Span:
        """From the first whole day to the last: days before the months, the months, days
        after them are one contiguous range."""
        spans = [self.months, *self.days] if self.months else self.days
        return min(a for a, _ in spans), max(b for _, b in spans)


def spans(since: datetime, until: datetime, timezone: str, with_months: bool) -> Spans:
    zone = ZoneInfo(timezone)
    days = _within(since, until, zone, "day")
    if days is None:
        return Spans(None, [], [(since, until)])
    rest = [span for span in ((since, days[0]), (days[1], until)) if span[0] < span[1]]
    months = _within(*days, zone, "month") if with_months else None
    if months is None:
        return Spans(None, [days], rest)
    outside = [(days[0], months[0]), (months[1], days[1])]
    return Spans(months, [span for span in outside if span[0] < span[1]], rest)


def period_params(cut: Spans, timezone: str) -> dict[str, str]:
    """The bounds of `cut`'s whole days and months as periods of the rollups, bound as
    `covering` names them."""
    zone = ZoneInfo(timezone)

    def bounds(name: str, span: Span, form: str) -> dict[str, str]:
        first, end = (moment.astimezone(zone).strftime(form) for moment in span)
        return {f"{name}_first": first, f"{name}_end": end}

    params = {}
    for number, span in enumerate(cut.days):
        params.update(bounds(f"day{number}", span, "%Y-%m-%d"))
    if cut.months:
        params.update(bounds("months", cut.months, "%Y-%m"))
    return params


def covering(model: Any, days: int, months: bool) -> ColumnElement[bool]:
    """The rows of a rollup table (with `grain` and `period`) covering `days` spans of whole
    days, and a span of whole months if `months`, bound as `period_params` names them."""

    def periods(grain: str, name: str) -> ColumnElement[bool]:
        return and_(
            model.grain == grain,
            model.period >= bindparam(f"{name}_first"),
            model.period < bindparam(f"{name}_end"),
        )

    covered = [periods(DAY, f"day{number}") for number in range(days)]
    if months:
        covered.append(periods(MONTH, "months"))
    return or_(false(), *covered)


def _values(row: Any) -> list[Any]:
    return list(row.values())


def _child_key(model: Any, level: Level, group_by: GroupBy, dialect: str, timezone: str) -> Any:
    """What a closure query of a unit at `level` groups `model`'s rows by."""
    if group_by == GroupBy.org_unit:
        return getattr(model, CHILD_COLUMN[level])
    if group_by == GroupBy.category:
        return model.category_code
    if group_by == GroupBy.department:
        return model.department_code
    if model is Ticket:
        return measures.local_day(dialect, timezone)
    return model.period


# The statements below are built once for each shape of query: building and caching one of
# them anew took a quarter of a statistics request.


@lru_cache(maxsize=512)
def _rollup_sums(
    level: Level, group_by: GroupBy, dialect: str, timezone: str, days: int, months: bool
) -> DirectStatement:
    """The rollups' sums in the area of the unit `area`, over `days` spans of whole days and
    the whole months if `months` (bound as `period_params` names them): from the rows per
    category and department only when grouped by either."""
    by_row = group_by in (GroupBy.category, GroupBy.department)
    rollup = ClosureRollup if by_row else CommunityClosureRollup
    key = _child_key(rollup, level, group_by, dialect, timezone)
    area = getattr(rollup, AREA_COLUMNS[level].key)
    covered = covering(rollup, days, months)
    sums = (func.sum(getattr(rollup, m)) for m in ROLLUP_MEASURES)
    return DirectStatement(
        select(key, *sums)
        .where(area == bindparam("area"), covered, rollup.reported > 0)
        .group_by(key),
        reads=True,
    )


@lru_cache(maxsize=512)
def _overdue_open(level: Level, group_by: GroupBy, dialect: str, timezone: str) -> DirectStatement:
    """The open tickets overdue at `now` in the area of the unit `area`, reported in
    [`since`, `until`)."""
    key = _child_key(Ticket, level, group_by, dialect, timezone)
    reported = and_(
        AREA_COLUMNS[level] == bindparam("area"),
        Ticket.reported_at >= bindparam("since", type_=UTCDateTime),
        Ticket.reported_at < bindparam("until", type_=UTCDateTime),
    )
    now = bindparam("now", type_=UTCDateTime)
    return DirectStatement(
        select(key, measures.overdue_open(now)).where(reported, measures.IS_OPEN).group_by(key),
        reads=True,
    )


def rollups_serve(level: Level, group_by: GroupBy) -> bool:
    """Whether community rollups hold the groups: not a community's grids, nor a grid."""
    return level != Level.grid and not (level == Level.community and group_by == GroupBy.org_unit)


class Query:
    """One closure query: where to count, and how to group."""

    def __init__(
        self, session: AsyncSession, unit: OrgUnit, group_by: GroupBy, timezone: str
    ) -> None:
        self.session = session
        self.unit = unit
        self.group_by = group_by
        self.timezone = timezone
        self.dialect = session.get_bind().dialect.name
        self.groups: Groups = defaultdict(Counts)

    def _key(self, source: Any) -> Any:
        level = Level(self.unit.level)
        return _child_key(source, level, self.group_by, self.dialect, self.timezone)

    def _collect(self, key: Any, counts: Counts) -> None:
        if self.group_by in TIME_GROUPS:
            key = _fold(key, self.group_by)
        elif key == NO_DEPARTMENT and self.group_by == GroupBy.department:
            key = None
        self.groups[key].add(counts)

    def _tickets_within(self, *ranges: tuple[datetime, datetime]) -> ColumnElement[bool]:
        spans = [and_(Ticket.reported_at >= a, Ticket.reported_at < b) for a, b in ranges if a < b]
        return and_(in_area(self.unit), or_(false(), *spans))

    async def from_tickets(self, now: datetime | None, *ranges: tuple[datetime, datetime]) -> None:
        """From the tickets; `overdue_open` too unless `now` is None."""
        if not any(a < b for a, b in ranges):
            return
        key = self._key(Ticket)
        overdue_open = measures.overdue_open(now) if now else literal_column("0")
        query = (
            select(key, *measures.stored(self.dialect), overdue_open)
            .where(self._tickets_within(*ranges))
            .group_by(key)
        )
        for group, *stored, overdue_open in await self.session.execute(query):
            self._collect(group, Counts.of(stored, overdue_open))

    async def from_rollups(self, now: datetime | None, cut: Spans) -> None:
        """From the rollups; `overdue_open` too unless `now` is None."""
        level = Level(self.unit.level)
        shape = level, self.group_by, self.dialect, self.timezone
        sums = _rollup_sums(*shape, len(cut.days), cut.months is not None)
        periods = {"area": self.unit.code, **period_params(cut, self.timezone)}
        for group, *stored in map(_values, await sums.rows(self.session, periods)):
            self._collect(group, Counts.of(stored))
        if now is None:
            return
        since, until = cut.covered
        within = {"area": self.unit.code, "since": since, "until": until, "now": now}
        overdue = await _overdue_open(*shape).rows(self.session, within)
        for group, overdue_open in map(_values, overdue):
            if overdue_open:
                self._collect(group, Counts(overdue_open=overdue_open))

    def result(self) -> ClosureStats:
        totals = Counts()
        for counts in self.groups.values():
            totals.add(counts)
        ordered: Iterable[str | None] = sorted(self.groups, key=lambda k: (k is None, k or ""))
        return ClosureStats(items=[self.groups[k].row(k) for k in ordered], totals=totals.row(None))


async def closure_stats(
    session: AsyncSession,
    unit: OrgUnit,
    since: datetime,
    until: datetime,
    group_by: GroupBy,
    timezone: str,
    now: datetime,
    use_rollups: bool = True,
) -> ClosureStats:
    """The closure measures of the tickets reported in [since, until) in `unit`'s area."""
    query = Query(session, unit, group_by, timezone)
    served = use_rollups and rollups_serve(Level(unit.level), group_by)
    if not served or not await rollups.built_for(session, timezone):
        await query.from_tickets(now, (since, until))
    else:
        cut = spans(since, until, timezone, with_months=group_by not in (GroupBy.day, GroupBy.week))
        if cut.months or cut.days:
            await query.from_rollups(now, cut)
        await query.from_tickets(now, *cut.rest)
    return query.result()


def rank(stats: ClosureStats, weights: tuple[float, float, float]) -> Ranking:
    """Orders the groups by score: closure rate, on-time closure rate and 1 - rework rate,
    weighted (the weights need not add up to 1: the score is divided by their sum)."""
    closure_w, on_time_w, rework_w = weights
    rows = []
    for item in stats.items:
        score = None
        if item.accepted:
            assert item.closure_rate is not None and item.on_time_closure_rate is not None
            assert item.rework_rate is not None
            weighted = (
                closure_w * item.closure_rate
                + on_time_w * item.on_time_closure_rate
                + rework_w * (1 - item.rework_rate)
            )
            score = weighted / (closure_w + on_time_w + rework_w)
        rows.append(
            RankingRow(
                rank=None,
                key=item.key,
                score=score,
                accepted=item.accepted,
                closure_rate=item.closure_rate,
                on_time_closure_rate=item.on_time_closure_rate,
                rework_rate=item.rework_rate,
            )
        )
    rows.sort(key=lambda r: (r.score is None, -(r.score or 0), r.key or ""))
    for position, row in enumerate(rows, start=1):
        if row.score is not None:
            previous = rows[position - 2] if position > 1 else None
            same = previous is not None and previous.score == row.score
            row.rank = previous.rank if same and previous is not None else position
    return Ranking(
        items=rows,
        weights=RankingWeights(
            closure_rate=closure_w, on_time_closure_rate=on_time_w, no_rework=rework_w
        ),
    )


async def name_ranking(session: AsyncSession, ranking: Ranking, by: RankBy) -> None:
    """Gives each row the name of its org unit or department."""
    model = OrgUnit if by == RankBy.org_unit else Department
    codes = [row.key for row in ranking.items if row.key is not None]
    if not codes:
        return
    names = dict(
        (await session.execute(select(model.code, model.name).where(model.code.in_(codes)))).all()
    )
    for row in ranking.items:
        row.name = names.get(row.key) if row.key is not None else None
