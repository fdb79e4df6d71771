"""Appraisal (考核, API.md v1.1): grid workers and departments scored from the same case records
as the closure statistics, every figure a sum of the facts of `stats.appraisal_rollups` (or of
the closure measures, for what departments lead) over the tickets reported in a range in an
area, read from the rollups for whole days of an area above a grid, from the tickets otherwise.

How each figure is counted, and what the history rows must carry for it, is in
docs/appraisal.md. Scores are worked out in exact fractions, so that equal figures give equal
scores (and share a rank) whatever the order of the arithmetic; they are shown as floats.
"""

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, distinct, func, or_, select, true, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import Role, User
from app.orgs.models import Department, Level, OrgUnit
from app.patrol.models import ClockIn
from app.stats import appraisal_rollups, measures, rollups
from app.stats.models import APPRAISAL_MEASURES, AppraisalRollup, Party, PatrolDays
from app.stats.schemas import (
    DepartmentAppraisal,
    DepartmentAppraisalRow,
    ExplainTerm,
    GroupBy,
    Subject,
    WorkerAppraisal,
    WorkerAppraisalRow,
)
from app.stats.service import (
    Counts,
    Groups,
    Query,
    Spans,
    covering,
    period_params,
    spans,
)
from app.tickets.models import Ticket
from app.tickets.service import AREA_COLUMNS, in_area

# Terms that enter a score as 1 - rate, and those counted as 0 (not 1) with no denominator.
INVERTED = frozenset({"missed_rate", "rework_rate"})
EMPTY_AT_ZERO = frozenset({"missed_rate"})


@dataclass(frozen=True)
class Term:
    """A rate of an item as it enters the score."""

    name: str
    part: int
    whole: int

    @property
    def rate(self) -> float | None:
        return self.part / self.whole if self.whole else None

    @property
    def value(self) -> tuple[int, int]:
        """Its value in the score as a numerator and a denominator."""
        if self.whole:
            part, whole = self.part, self.whole
        else:
            part, whole = (0 if self.name in EMPTY_AT_ZERO else 1), 1
        return (whole - part, whole) if self.name in INVERTED else (part, whole)


@lru_cache(maxsize=16)
def _whole_weights(weights: tuple[tuple[str, float], ...]) -> dict[str, int]:
    """The weights as whole numbers in the same proportions (exactly: a float is a binary
    fraction), so that a score is one fraction of whole numbers."""
    exact = {name: Fraction(weight) for name, weight in weights}
    common = math.lcm(*(weight.denominator for weight in exact.values()))
    return {name: int(weight * common) for name, weight in exact.items()}


def score(terms: Sequence[Term], weights: dict[str, float]) -> tuple[Fraction, list[ExplainTerm]]:
    """100 × Σ weight × value / Σ weight, exactly, with each term's share."""
    whole_weights = _whole_weights(tuple(sorted(weights.items())))
    scaled = [whole_weights[t.name] for t in terms]
    total = sum(scaled)
    values = [t.value for t in terms]
    common = math.prod(whole for _, whole in values)
    numerator = sum(
        w * part * (common // whole) for w, (part, whole) in zip(scaled, values, strict=True)
    )
    explain = [
        ExplainTerm(
            term=t.name,
            rate=t.rate,
            part=t.part,
            whole=t.whole,
            value=part / whole,
            weight=weights[t.name],
            points=100 * w * part / (whole * total),
        )
        for t, w, (part, whole) in zip(terms, scaled, values, strict=True)
    ]
    return Fraction(100 * numerator, total * common), explain


Row = TypeVar("Row", WorkerAppraisalRow, DepartmentAppraisalRow)


def ranked(rows: list[tuple[Fraction | None, Row]], key: Callable[[Row], str]) -> list[Row]:
    """Highest score first, null last (then by key); equal scores share the first one's rank,
    a null score has a null rank."""

    def order(pair: tuple[Fraction | None, Row]) -> tuple[Any, ...]:
        exact = pair[0] or Fraction(0)  # the float first: most comparisons end there
        return (pair[0] is None, -float(exact), -exact, key(pair[1]))

    rows.sort(key=order)
    previous: Fraction | None = None
    rank: int | None = None
    for position, (exact, row) in enumerate(rows, start=1):
        if exact is not None:
            rank = rank if exact == previous else position
            row.rank, row.score, previous = rank, float(exact), exact
    return [row for _, row in rows]


class Appraisal:
    """One appraisal: the tickets reported in [since, until) in `unit`'s area, counted from the
    rollups where they hold the area and range, from the tickets otherwise."""

    def __init__(
        self,
        session: AsyncSession,
        unit: OrgUnit,
        since: datetime,
        until: datetime,
        timezone: str,
        weights: dict[str, dict[str, float]],
    ) -> None:
        self.session = session
        self.unit = unit
        self.since, self.until = since, until
        self.timezone = timezone
        self.weights = weights
        self.dialect = session.get_bind().dialect.name
        self.tickets = and_(in_area(unit), Ticket.reported_at >= since, Ticket.reported_at < until)
        self.cut: Spans | None = None

    async def use_rollups(self) -> None:
        """Reads the rollups from now on where they hold the area and the range: whole days
        of an area above a grid, once built for the time zone."""
        if Level(self.unit.level) == Level.grid:
            return
        cut = spans(self.since, self.until, self.timezone, with_months=True)
        if cut.rest or not await rollups.built_for(self.session, self.timezone):
            return
        self.cut = cut

    def _covering(self, model: Any) -> ColumnElement[bool]:
        """The rollup rows of the whole days and months of the range (`_periods` binds them)."""
        assert self.cut is not None
        return covering(model, len(self.cut.days), self.cut.months is not None)

    def _periods(self) -> dict[str, str]:
        return {} if self.cut is None else period_params(self.cut, self.timezone)

    async def _figures(self, *parties: Party) -> dict[tuple[str, str], dict[str, int]]:
        """{(party, code): {measure: count}} of the parties' appraisal facts."""
        if self.cut is not None:
            area = getattr(AppraisalRollup, AREA_COLUMNS[Level(self.unit.level)].key)
            source: Any = AppraisalRollup
            where = and_(area == self.unit.code, self._covering(AppraisalRollup))
        else:
            source = union_all(*appraisal_rollups.facts(self.tickets)).subquery()
            where = true()
            source = source.c
        query = (
            select(
                source.party,
                source.code,
                *(func.sum(getattr(source, m)) for m in APPRAISAL_MEASURES),
            )
            .where(where, source.party.in_([str(p) for p in parties]))
            .group_by(source.party, source.code)
        )
        return {
            (party, code): dict(zip(APPRAISAL_MEASURES, (int(v or 0) for v in values), strict=True))
            for party, code, *values in await self.session.execute(query, self._periods())
        }

    async def _patrol_days(self, workers: Any) -> dict[str, int]:
        if self.cut is not None:
            query = (
                select(PatrolDays.worker, func.sum(PatrolDays.days))
                .where(
                    PatrolDays.worker.in_(workers),
                    self._covering(PatrolDays),
                )
                .group_by(PatrolDays.worker)
            )
        else:
            day = measures.local_day(self.dialect, self.timezone, ClockIn.at)
            query = (
                select(ClockIn.worker, func.count(distinct(day)))
                .where(
                    ClockIn.worker.in_(workers),
                    ClockIn.inside_grid.is_(True),
                    ClockIn.at >= self.since,
                    ClockIn.at < self.until,
                )
                .group_by(ClockIn.worker)
            )
        rows = await self.session.execute(query, self._periods())
        return {worker: int(days or 0) for worker, days in rows}

    # Grid workers ---------------------------------------------------------------------------

    async def grid_workers(self) -> WorkerAppraisal:
        weights = self.weights[Subject.grid_workers]
        in_units = OrgUnit.path.startswith(self.unit.path, autoescape=True)
        workers = (
            select(User.username, User.display_name, User.org_unit_code, User.is_active)
            .join(OrgUnit, OrgUnit.code == User.org_unit_code)
            .where(User.role == Role.grid_worker, in_units)
        )
        listed = select(workers.subquery().c.username).scalar_subquery()
        figures = await self._figures(Party.user, Party.grid)
        patrol_days = await self._patrol_days(listed)
        none: dict[str, int] = defaultdict(int)

        rows: list[tuple[Fraction | None, WorkerAppraisalRow]] = []
        for username, display_name, grid_code, active in await self.session.execute(workers):
            mine = figures.get((Party.user, username), none)
            missed = figures.get((Party.grid, grid_code or ""), none)["public_first"]
            reported, valid = mine["reports"], mine["valid_reports"]
            checks, checks_on_time = mine["checks"], mine["checks_on_time"]
            verified, verified_on_time = mine["verifications"], mine["verifications_on_time"]
            terms = [
                Term("valid_rate", valid, reported),
                Term("missed_rate", missed, valid + missed),
                Term("on_time_check_rate", checks_on_time, checks),
                Term("on_time_verification_rate", verified_on_time, verified),
            ]
            scored = reported + checks + verified > 0
            if not scored and not active:
                continue  # a worker gone before the range
            exact, explain = score(terms, weights) if scored else (None, [])
            row = WorkerAppraisalRow(
                rank=None,
                username=username,
                display_name=display_name,
                grid_code=grid_code,
                reports=reported,
                valid_reports=valid,
                valid_rate=terms[0].rate,
                public_first=missed,
                missed_rate=terms[1].rate,
                checks=checks,
                checks_on_time=checks_on_time,
                on_time_check_rate=terms[2].rate,
                verifications=verified,
                verifications_on_time=verified_on_time,
                on_time_verification_rate=terms[3].rate,
                patrol_days=patrol_days.get(username, 0),
                score=None,
                explain=explain,
            )
            rows.append((exact, row))
        items = ranked(rows, key=lambda r: r.username)
        return WorkerAppraisal(items=items, weights=weights)

    # Departments ----------------------------------------------------------------------------

    async def _led(self) -> Groups:
        """The closure measures of the tickets each department leads."""
        query = Query(self.session, self.unit, GroupBy.department, self.timezone)
        if self.cut is not None:
            await query.from_rollups(None, self.cut)
        else:
            await query.from_tickets(None, (self.since, self.until))
        return query.groups

    async def departments(self) -> DepartmentAppraisal:
        weights = self.weights[Subject.departments]
        above = self.unit.path.strip("/").split("/")
        departments = (
            select(Department.code, Department.name)
            .join(OrgUnit, OrgUnit.code == Department.org_unit_code)
            .where(
                or_(
                    OrgUnit.path.startswith(self.unit.path, autoescape=True),
                    OrgUnit.code.in_(above),
                )
            )
        )
        led = await self._led()
        figures = await self._figures(Party.department)
        none: dict[str, int] = defaultdict(int)

        rows: list[tuple[Fraction | None, DepartmentAppraisalRow]] = []
        for code, name in await self.session.execute(departments):
            counts = led.get(code) or Counts()
            mine = figures.get((Party.department, code), none)
            handled = counts.accepted
            terms = [
                Term("closure_rate", counts.closed, handled),
                Term("on_time_rate", counts.closed_on_time, handled),
                Term("rework_rate", counts.reworked, handled),
                Term("satisfaction_rate", counts.satisfied, counts.rated),
            ]
            exact, explain = score(terms, weights) if handled else (None, [])
            row = DepartmentAppraisalRow(
                rank=None,
                department_code=code,
                name=name,
                handled=handled,
                closed=counts.closed,
                closure_rate=terms[0].rate,
                closed_on_time=counts.closed_on_time,
                on_time_rate=terms[1].rate,
                reworked=counts.reworked,
                rework_rate=terms[2].rate,
                reopened=counts.reopened,
                returned=mine["returned"],
                assists=mine["assists"],
                assists_done=mine["assists_done"],
                rated=counts.rated,
                satisfied=counts.satisfied,
                satisfaction_rate=terms[3].rate,
                score=None,
                explain=explain,
            )
            rows.append((exact, row))
        items = ranked(rows, key=lambda r: r.department_code)
        return DepartmentAppraisal(items=items, weights=weights)


async def appraise(
    session: AsyncSession,
    unit: OrgUnit,
    since: datetime,
    until: datetime,
    subject: Subject,
    timezone: str,
    weights: dict[str, dict[str, float]],
    use_rollups: bool = True,
) -> WorkerAppraisal | DepartmentAppraisal:
    appraisal = Appraisal(session, unit, since, until, timezone, weights)
    if use_rollups:
        await appraisal.use_rollups()
    if subject == Subject.grid_workers:
        return await appraisal.grid_workers()
    return await appraisal.departments()
