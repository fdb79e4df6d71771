from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel

from app.auth.models import Role, User
from app.deps import (
    ClockDep,
    SessionDep,
    SettingsDep,
    built_by_coroutine,
    reads_from_replica,
    require_roles,
)
from app.errors import PROBLEM_RESPONSES, Invalid
from app.fields import EARLIEST_DAY, LATEST_DAY, start_of
from app.orgs.models import OrgUnit
from app.orgs.service import unit_in_scope
from app.stats import service
from app.stats.appraisal import appraise
from app.stats.export import (
    MEDIA_TYPES,
    Format,
    Lang,
    chosen_format,
    explained_table,
    render,
    table,
)
from app.stats.schemas import (
    ClosureRow,
    ClosureStats,
    DepartmentAppraisal,
    DepartmentAppraisalRow,
    GroupBy,
    RankBy,
    Ranking,
    RankingRow,
    Subject,
    WorkerAppraisal,
    WorkerAppraisalRow,
)

router = APIRouter(prefix="/api/v1/stats", tags=["statistics"], responses=PROBLEM_RESPONSES)
Overseer = Annotated[User, Depends(require_roles(Role.dispatcher, Role.supervisor))]
EXPORTS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}, MEDIA_TYPES["xlsx"]: {}}}
}


@dataclass
class StatsRequest:
    """What every statistics endpoint takes: the unit and days asked about, and the download
    format (`?format=csv|xlsx` or an Accept header naming one; JSON otherwise)."""

    session: SessionDep
    settings: SettingsDep
    clock: ClockDep
    user: Overseer
    org_unit: str
    from_: Annotated[
        date,
        Query(alias="from", ge=EARLIEST_DAY, le=LATEST_DAY, description="first Asia/Shanghai day"),
    ]
    to: Annotated[
        date,
        Query(ge=EARLIEST_DAY, le=LATEST_DAY, description="day after the last (exclusive)"),
    ]
    format: Annotated[
        Format | None, Query(description="csv or xlsx for a download (or Accept: text/csv)")
    ] = None
    lang: Annotated[Lang, Query(description="column headers of downloads: en or zh")] = Lang.en
    accept: Annotated[str | None, Header()] = None

    async def area_and_range(
        self, max_years: int | None = None
    ) -> tuple[OrgUnit, datetime, datetime]:
        """The unit asked about, in the caller's scope, and the range [from, to) as instants."""
        if self.to <= self.from_:
            raise Invalid("to must be after from", loc=["query", "to"])
        if max_years is not None and self.to > years_after(self.from_, max_years):
            raise Invalid(f"the range may span at most {max_years} years", loc=["query", "to"])
        unit = await unit_in_scope(self.session, self.user, self.org_unit)
        timezone = self.settings.timezone
        return unit, start_of(self.from_, timezone, "from"), start_of(self.to, timezone, "to")

    async def closure(self, group_by: GroupBy) -> ClosureStats:
        unit, since, until = await self.area_and_range()
        return await service.closure_stats(
            self.session,
            unit,
            since,
            until,
            group_by,
            self.settings.timezone,
            self.clock.now(),
            use_rollups=self.settings.stats_rollups,
        )

    def respond(
        self,
        name: str,
        result: BaseModel,
        model: type[BaseModel],
        rows: list[Any],
        total: BaseModel | None = None,
    ) -> Any:
        """`result` as JSON, or its `rows` (and `total`) as a CSV or XLSX download."""
        fmt = chosen_format(self.format, self.accept)
        if fmt == Format.json:
            return result
        headers, values = table(model, rows, self.lang, total)
        return render(fmt, f"{name}-{self.org_unit}-{self.from_}", headers, values)


def years_after(day: date, years: int) -> date:
    """The same day `years` later (29 February: 1 March)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


StatsDep = Annotated[StatsRequest, Depends(built_by_coroutine(StatsRequest))]


@router.get("/closure", response_model=ClosureStats, responses=EXPORTS)
@reads_from_replica
async def closure(request: StatsDep, group_by: GroupBy = GroupBy.org_unit) -> Any:
    """Closure statistics of the tickets reported in [from, to) under `org_unit`, counted under
    the grid where each was reported wherever it was escalated. `group_by=org_unit` groups by
    the unit's children (the grids of a community)."""
    stats = await request.closure(group_by)
    return request.respond("closure", stats, ClosureRow, stats.items, stats.totals)


@router.get("/ranking", response_model=Ranking, responses=EXPORTS)
@reads_from_replica
async def ranking(request: StatsDep, by: RankBy = RankBy.org_unit) -> Any:
    """A league table of the unit's children (or of departments) by a weighted score of closure
    rate, on-time closure rate and rework rate (weights: GRIDWORK_RANKING_WEIGHTS)."""
    stats = await request.closure(GroupBy(by))
    ranked = service.rank(stats, request.settings.ranking_weight_values)
    await service.name_ranking(request.session, ranked, by)
    return request.respond("ranking", ranked, RankingRow, ranked.items)


MAX_APPRAISAL_YEARS = 3
APPRAISAL_ROWS: dict[Subject, type[BaseModel]] = {
    Subject.grid_workers: WorkerAppraisalRow,
    Subject.departments: DepartmentAppraisalRow,
}


@router.get("/appraisal", response_model=WorkerAppraisal | DepartmentAppraisal, responses=EXPORTS)
@reads_from_replica
async def appraisal(request: StatsDep, subject: Subject) -> Any:
    """Appraisal (考核) of the grid workers or the departments of `org_unit`'s area over the
    tickets reported there in [from, to) (at most 3 years), ranked by score, each score with
    its breakdown (`explain`). Weights: GRIDWORK_APPRAISAL_WEIGHTS; definitions: API.md."""
    unit, since, until = await request.area_and_range(MAX_APPRAISAL_YEARS)
    result = await appraise(
        request.session,
        unit,
        since,
        until,
        subject,
        request.settings.timezone,
        request.settings.appraisal_weight_values,
        use_rollups=request.settings.stats_rollups,
    )
    fmt = chosen_format(request.format, request.accept)
    if fmt == Format.json:
        return result
    headers, values = explained_table(
        APPRAISAL_ROWS[subject], result.items, list(result.weights), request.lang
    )
    name = f"appraisal-{subject}-{request.org_unit}-{request.from_}"
    return render(fmt, name, headers, values)
