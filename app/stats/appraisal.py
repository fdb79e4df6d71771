"""Appraisal (考核, API.md v1.1): grid workers and departments scored from the same case records
as the closure statistics, every figure an SQL aggregate over the tickets reported in a range
in an area, their history rows, assisting parts and the workers' clock-ins.

How each figure is counted, and what the history rows must carry for it, is in
docs/appraisal.md. Scores are worked out in exact fractions, so that equal figures give equal
scores (and share a rank) whatever the order of the arithmetic; they are shown as floats.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, and_, case, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import Role, User
from app.orgs.models import Department, OrgUnit
from app.patrol.models import ClockIn
from app.stats.schemas import (
    DepartmentAppraisal,
    DepartmentAppraisalRow,
    ExplainTerm,
    Subject,
    WorkerAppraisal,
    WorkerAppraisalRow,
)
from app.tickets.machine import Action, Status
from app.tickets.models import IS_CLOSED, Ticket, TicketAssist, TicketHistory, status_among
from app.tickets.service import in_area

ACCEPTED = ~status_among([Status.rejected, Status.merged])
# Terms that enter a score as 1 - rate, and the rate counted when it has no denominator.
INVERTED = frozenset({"missed_rate", "rework_rate"})
EMPTY_RATE = {"missed_rate": Fraction(0)}
OPEN311 = "open311"
CHECKS = (Action.confirm, Action.refute)


def _count(condition: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _on_time() -> ColumnElement[bool]:
    """The answer's own verdict, recorded in its history row when it was taken (see
    `tickets.service._judge_check` and `_verify`)."""
    return TicketHistory.details["on_time"].as_boolean()


def _local_day(dialect: str, timezone: str, moment: Any) -> ColumnElement[str]:
    if dialect == "postgresql":
        return func.to_char(func.timezone(timezone, moment), "YYYY-MM-DD")
    return func.local_date(moment, timezone)


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
    def value(self) -> Fraction:
        if self.whole:
            rate = Fraction(self.part, self.whole)
        else:
            rate = EMPTY_RATE.get(self.name, Fraction(1))
        return 1 - rate if self.name in INVERTED else rate


def score(terms: Sequence[Term], weights: dict[str, float]) -> tuple[Fraction, list[ExplainTerm]]:
    """100 × Σ weight × value / Σ weight, exactly, with each term's share."""
    exact = {t.name: Fraction(weights[t.name]) for t in terms}
    total = sum(exact.values(), Fraction(0))
    points = {t.name: 100 * exact[t.name] * t.value / total for t in terms}
    explain = [
        ExplainTerm(
            term=t.name,
            rate=t.rate,
            part=t.part,
            whole=t.whole,
            value=float(t.value),
            weight=weights[t.name],
            points=float(points[t.name]),
        )
        for t in terms
    ]
    return sum(points.values(), Fraction(0)), explain


Row = TypeVar("Row", WorkerAppraisalRow, DepartmentAppraisalRow)


def ranked(rows: list[tuple[Fraction | None, Row]], key: Callable[[Row], str]) -> list[Row]:
    """Highest score first, null last (then by key); equal scores share the first one's rank,
    a null score has a null rank."""
    rows.sort(key=lambda pair: (pair[0] is None, -(pair[0] or 0), key(pair[1])))
    previous: Fraction | None = None
    rank: int | None = None
    for position, (exact, row) in enumerate(rows, start=1):
        if exact is not None:
            rank = rank if exact == previous else position
            row.rank, row.score, previous = rank, float(exact), exact
    return [row for _, row in rows]


class Appraisal:
    """One appraisal: the tickets reported in [since, until) in `unit`'s area."""

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

    async def _grouped(self, query: Any) -> dict[Any, list[int]]:
        """{group: [counts...]} of a query whose first column is the group."""
        return {
            group: [int(v or 0) for v in values]
            for group, *values in await self.session.execute(query)
        }

    # Grid workers ---------------------------------------------------------------------------

    async def grid_workers(self) -> WorkerAppraisal:
        weights = self.weights[Subject.grid_workers]
        in_units = OrgUnit.path.startswith(self.unit.path, autoescape=True)
        workers = (
            select(User.username, User.display_name, User.org_unit_code, User.is_active)
            .join(OrgUnit, OrgUnit.code == User.org_unit_code)
            .where(User.role == Role.grid_worker, in_units)
        )
        listed = select(User.username).join(OrgUnit, OrgUnit.code == User.org_unit_code)
        listed = listed.where(User.role == Role.grid_worker, in_units)
        reports = await self._grouped(
            select(Ticket.reporter, func.count(), _count(ACCEPTED))
            .where(self.tickets, Ticket.reporter.in_(listed.scalar_subquery()))
            .group_by(Ticket.reporter)
        )
        public_first = await self._grouped(
            select(Ticket.grid_code, func.count())
            .where(self.tickets, Ticket.source == OPEN311, ACCEPTED)
            .group_by(Ticket.grid_code)
        )
        # {actor: {"check" | "verify": [answers, on time]}}
        answers: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        query = (
            select(TicketHistory.actor, TicketHistory.action, func.count(), _count(_on_time()))
            .join(Ticket, Ticket.id == TicketHistory.ticket_id)
            .where(
                self.tickets,
                TicketHistory.action.in_([*CHECKS, Action.verify]),
                TicketHistory.actor.in_(listed.scalar_subquery()),
            )
            .group_by(TicketHistory.actor, TicketHistory.action)
        )
        for actor, action, done, on_time in await self.session.execute(query):
            counted = answers[actor]["verify" if action == Action.verify else "check"]
            counted[0] += int(done or 0)
            counted[1] += int(on_time or 0)
        day = _local_day(self.dialect, self.timezone, ClockIn.at)
        patrol_days = await self._grouped(
            select(ClockIn.worker, func.count(distinct(day)))
            .where(
                ClockIn.worker.in_(listed.scalar_subquery()),
                ClockIn.inside_grid.is_(True),
                ClockIn.at >= self.since,
                ClockIn.at < self.until,
            )
            .group_by(ClockIn.worker)
        )

        rows: list[tuple[Fraction | None, WorkerAppraisalRow]] = []
        for username, display_name, grid_code, active in await self.session.execute(workers):
            reported, valid = reports.get(username, [0, 0])
            (missed,) = public_first.get(grid_code, [0])
            checks, checks_on_time = answers[username]["check"]
            verified, verified_on_time = answers[username]["verify"]
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
                patrol_days=patrol_days.get(username, [0])[0],
                score=None,
                explain=explain,
            )
            rows.append((exact, row))
        items = ranked(rows, key=lambda r: r.username)
        return WorkerAppraisal(items=items, weights=weights)

    # Departments ----------------------------------------------------------------------------

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
        led = await self._grouped(
            select(
                Ticket.department_code,
                func.count(),
                _count(IS_CLOSED),
                _count(and_(IS_CLOSED, ~Ticket.overdue)),
                _count(Ticket.rework_count > 0),
                _count(Ticket.reopen_count > 0),
                _count(Ticket.rating.is_not(None)),
                _count(Ticket.rating >= 4),
            )
            .where(self.tickets, ACCEPTED, Ticket.department_code.is_not(None))
            .group_by(Ticket.department_code)
        )
        # The department a `return` row names (its details), grouped through a subquery: an
        # expression with a bound JSON key is not the same twice in a GROUP BY on PostgreSQL.
        returns = (
            select(
                TicketHistory.ticket_id,
                TicketHistory.details["department_code"].as_string().label("department_code"),
            )
            .join(Ticket, Ticket.id == TicketHistory.ticket_id)
            .where(self.tickets, TicketHistory.action == Action.return_)
            .subquery()
        )
        returned = await self._grouped(
            select(returns.c.department_code, func.count(distinct(returns.c.ticket_id))).group_by(
                returns.c.department_code
            )
        )
        assists = await self._grouped(
            select(TicketAssist.department_code, func.count(), func.count(TicketAssist.done_at))
            .join(Ticket, Ticket.id == TicketAssist.ticket_id)
            .where(self.tickets)
            .group_by(TicketAssist.department_code)
        )

        rows: list[tuple[Fraction | None, DepartmentAppraisalRow]] = []
        for code, name in await self.session.execute(departments):
            handled, closed, on_time, reworked, reopened, rated, satisfied = led.get(code, [0] * 7)
            asked, done = assists.get(code, [0, 0])
            terms = [
                Term("closure_rate", closed, handled),
                Term("on_time_rate", on_time, handled),
                Term("rework_rate", reworked, handled),
                Term("satisfaction_rate", satisfied, rated),
            ]
            exact, explain = score(terms, weights) if handled else (None, [])
            row = DepartmentAppraisalRow(
                rank=None,
                department_code=code,
                name=name,
                handled=handled,
                closed=closed,
                closure_rate=terms[0].rate,
                closed_on_time=on_time,
                on_time_rate=terms[1].rate,
                reworked=reworked,
                rework_rate=terms[2].rate,
                reopened=reopened,
                returned=returned.get(code, [0])[0],
                assists=asked,
                assists_done=done,
                rated=rated,
                satisfied=satisfied,
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
) -> WorkerAppraisal | DepartmentAppraisal:
    appraisal = Appraisal(session, unit, since, until, timezone, weights)
    if subject == Subject.grid_workers:
        return await appraisal.grid_workers()
    return await appraisal.departments()
