"""Closure statistics (结案率, 按期结案率, 返工率, in-community resolution) as SQL aggregates.

One GROUP BY query counts every measure per group; rates are derived from the counts. Time
groups are counted per local day in SQL and folded into ISO weeks or months here, so the SQL
stays the same on SQLite and PostgreSQL but for the day and the duration expressions.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement as Expr

from app.orgs.models import Level, OrgUnit
from app.stats.schemas import ClosureRow, ClosureStats, GroupBy, Ranking, RankingRow, RankingWeights
from app.tickets import deadlines
from app.tickets.machine import CLOSED_STATUSES, OPEN_STATUSES, Status
from app.tickets.models import Ticket
from app.tickets.service import in_area

CHILD_COLUMN = {
    Level.district: Ticket.town_code,
    Level.town: Ticket.community_code,
    Level.community: Ticket.grid_code,
    Level.grid: Ticket.grid_code,
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
    resolved_in_community: int = 0
    rated: int = 0
    satisfied: int = 0
    handling_seconds: float = 0.0

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
            resolved_in_community=self.resolved_in_community,
            in_community_rate=rate(self.resolved_in_community, self.closed),
            rated=self.rated,
            satisfied=self.satisfied,
            satisfaction_rate=rate(self.satisfied, self.rated),
            avg_handling_hours=(
                self.handling_seconds / 3600 / self.closed if self.closed else None
            ),
        )


def _count(condition: ColumnElement[bool]) -> Expr[Any]:
    return func.sum(case((condition, 1), else_=0))


def _measures(dialect: str, now: datetime) -> list[Expr[Any]]:
    closed = Ticket.status.in_(list(CLOSED_STATUSES))
    is_open = Ticket.status.in_(list(OPEN_STATUSES))
    handling: Any
    if dialect == "postgresql":
        handling = func.extract("epoch", Ticket.closed_at - Ticket.reported_at)
    else:
        handling = (func.julianday(Ticket.closed_at) - func.julianday(Ticket.reported_at)) * 86400
    return [
        func.count(),
        _count(Ticket.status.not_in([Status.rejected, Status.merged])),
        _count(closed),
        _count(and_(closed, ~Ticket.overdue)),
        _count(Ticket.self_resolved.is_(True)),
        _count(is_open),
        _count(and_(is_open, deadlines.overdue_clause(True, now))),
        _count(Ticket.escalation_count > 0),
        _count(Ticket.rework_count > 0),
        _count(and_(closed, Ticket.escalation_count == 0)),
        _count(Ticket.rating.is_not(None)),
        _count(Ticket.rating >= 4),
        func.sum(case((closed, handling), else_=0)),
    ]


def _local_day(dialect: str, timezone: str, at: datetime) -> Expr[Any]:
    if dialect == "postgresql":
        return func.to_char(func.timezone(timezone, Ticket.reported_at), "YYYY-MM-DD")
    offset = ZoneInfo(timezone).utcoffset(at)
    minutes = int(offset.total_seconds() // 60) if offset else 0
    return func.strftime("%Y-%m-%d", Ticket.reported_at, f"{minutes:+d} minutes")


def _fold(day: str, group_by: GroupBy) -> str:
    if group_by == GroupBy.day:
        return day
    parsed = date.fromisoformat(day)
    if group_by == GroupBy.month:
        return day[:7]
    year, week, _ = parsed.isocalendar()
    return f"{year}-W{week:02d}"


async def closure_stats(
    session: AsyncSession,
    unit: OrgUnit,
    since: datetime,
    until: datetime,
    group_by: GroupBy,
    timezone: str,
    now: datetime,
) -> ClosureStats:
    dialect = session.get_bind().dialect.name
    time_groups = group_by in (GroupBy.day, GroupBy.week, GroupBy.month)
    key: Any
    if time_groups:
        key = _local_day(dialect, timezone, since)
    else:
        key = {
            GroupBy.org_unit: CHILD_COLUMN[Level(unit.level)],
            GroupBy.category: Ticket.category_code,
            GroupBy.department: Ticket.department_code,
        }[group_by]
    rows = (
        await session.execute(
            select(key, *_measures(dialect, now))
            .where(in_area(unit), Ticket.reported_at >= since, Ticket.reported_at < until)
            .group_by(key)
        )
    ).all()
    groups: dict[str | None, Counts] = defaultdict(Counts)
    for group, *values in rows:
        counts = Counts(*(int(v or 0) for v in values[:-1]))
        counts.handling_seconds = round(float(values[-1] or 0))  # SQLite day fractions drift
        groups[_fold(group, group_by) if time_groups else group].add(counts)
    totals = Counts()
    for counts in groups.values():
        totals.add(counts)
    ordered: Iterable[str | None] = sorted(groups, key=lambda k: (k is None, k or ""))
    return ClosureStats(items=[groups[k].row(k) for k in ordered], totals=totals.row(None))


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
