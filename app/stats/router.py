from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query

from app.auth.models import Role, User
from app.deps import ClockDep, SessionDep, SettingsDep, require_roles
from app.errors import PROBLEM_RESPONSES, Invalid
from app.fields import start_of
from app.orgs.service import unit_in_scope
from app.stats import service
from app.stats.export import MEDIA_TYPES, Format, Lang, chosen_format, render, table
from app.stats.schemas import ClosureRow, ClosureStats, GroupBy, RankBy, Ranking, RankingRow

router = APIRouter(prefix="/api/v1/stats", tags=["statistics"], responses=PROBLEM_RESPONSES)
Overseer = Annotated[User, Depends(require_roles(Role.dispatcher, Role.supervisor))]


async def _closure(
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    user: User,
    org_unit: str,
    from_: date,
    to: date,
    group_by: GroupBy,
) -> ClosureStats:
    if to <= from_:
        raise Invalid("to must be after from", loc=["query", "to"])
    unit = await unit_in_scope(session, user, org_unit)
    since = start_of(from_, settings.timezone, "from")
    until = start_of(to, settings.timezone, "to")
    return await service.closure_stats(
        session, unit, since, until, group_by, settings.timezone, clock.now()
    )


FormatQuery = Annotated[
    Format | None, Query(description="csv or xlsx for a download (or Accept: text/csv)")
]
LangQuery = Annotated[Lang, Query(description="column headers of downloads: en or zh")]
EXPORTS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}, MEDIA_TYPES["xlsx"]: {}}}
}


@router.get("/closure", response_model=ClosureStats, responses=EXPORTS)
async def closure(
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    user: Overseer,
    org_unit: str,
    from_: Annotated[date, Query(alias="from", description="first Asia/Shanghai day")],
    to: Annotated[date, Query(description="day after the last (exclusive)")],
    group_by: GroupBy = GroupBy.org_unit,
    format: FormatQuery = None,
    lang: LangQuery = Lang.en,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """Closure statistics of the tickets reported in [from, to) under `org_unit`, counted under
    the grid where each was reported wherever it was escalated. `group_by=org_unit` groups by
    the unit's children (the grids of a community)."""
    stats = await _closure(session, settings, clock, user, org_unit, from_, to, group_by)
    fmt = chosen_format(format, accept)
    if fmt == Format.json:
        return stats
    headers, values = table(ClosureRow, stats.items, lang, stats.totals)
    return render(fmt, f"closure-{org_unit}-{from_}", headers, values)


@router.get("/ranking", response_model=Ranking, responses=EXPORTS)
async def ranking(
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    user: Overseer,
    org_unit: str,
    from_: Annotated[date, Query(alias="from", description="first Asia/Shanghai day")],
    to: Annotated[date, Query(description="day after the last (exclusive)")],
    by: RankBy = RankBy.org_unit,
    format: FormatQuery = None,
    lang: LangQuery = Lang.en,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """A league table of the unit's children (or of departments) by a weighted score of closure
    rate, on-time closure rate and rework rate (weights: GRIDWORK_RANKING_WEIGHTS)."""
    stats = await _closure(session, settings, clock, user, org_unit, from_, to, GroupBy(by))
    ranked = service.rank(stats, settings.ranking_weight_values)
    fmt = chosen_format(format, accept)
    if fmt == Format.json:
        return ranked
    headers, values = table(RankingRow, ranked.items, lang)
    return render(fmt, f"ranking-{org_unit}-{from_}", headers, values)
