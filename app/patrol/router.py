from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy import select

from app import reference
from app.auth.models import Role, User
from app.deps import (
    ClockDep,
    CurrentUser,
    SessionDep,
    SettingsDep,
    reads_from_replica,
    require_roles,
)
from app.errors import PROBLEM_RESPONSES
from app.fields import EARLIEST_DAY, LATEST_DAY, start_of
from app.orgs.service import unit_in_scope
from app.pagination import Page, PageDep
from app.patrol import service, tracks
from app.patrol.models import ClockIn
from app.patrol.schemas import ClockInIn, ClockInOut, PatrolStats, TrackIn, TrackOut, TrackStored

DAY = "an Asia/Shanghai day"
router = APIRouter(prefix="/api/v1", tags=["patrol"], responses=PROBLEM_RESPONSES)
GridWorkerUser = Annotated[User, Depends(require_roles(Role.grid_worker, admin=False))]
Overseer = Annotated[User, Depends(require_roles(Role.dispatcher, Role.supervisor))]
Reader = Annotated[User, Depends(require_roles(Role.grid_worker, Role.dispatcher, Role.supervisor))]


@router.post(
    "/clock-ins",
    status_code=status.HTTP_201_CREATED,
    response_model=ClockInOut,
    responses={200: {"model": ClockInOut, "description": "a resend: the record made before"}},
)
async def clock_in(
    data: ClockInIn,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    user: GridWorkerUser,
) -> ClockIn:
    """A grid worker clocks in on patrol. `grid_code` is the grid the point is in (a point up
    to the GPS-drift tolerance outside a grid counts as in it); `inside_grid` says whether that
    is the worker's own grid, which is what patrol coverage counts."""
    record, created = await service.clock_in(session, user, data, settings, clock.now())
    await session.commit()
    if not created:
        response.status_code = status.HTTP_200_OK
    return record


@router.get("/clock-ins", response_model=Page[ClockInOut])
async def list_clock_ins(
    session: SessionDep,
    settings: SettingsDep,
    user: Reader,
    page: PageDep,
    worker: str | None = None,
    grid: str | None = None,
    org_unit: Annotated[
        str | None, Query(description="workers of, or points in, a subtree")
    ] = None,
    from_: Annotated[date | datetime | None, Query(alias="from")] = None,
    to: Annotated[date | datetime | None, Query(description="exclusive")] = None,
) -> Page[ClockInOut]:
    """Clock-ins in the caller's scope, newest first."""
    query = select(ClockIn).where(service.visible_clock_ins(user))
    if worker is not None:
        query = query.where(ClockIn.worker == worker)
    if grid is not None:
        query = query.where(ClockIn.grid_code == grid)
    if org_unit is not None:
        query = query.where(service.in_area(await reference.unit(session, org_unit)))
    if from_ is not None:
        query = query.where(ClockIn.at >= start_of(from_, settings.timezone, "from"))
    if to is not None:
        query = query.where(ClockIn.at < start_of(to, settings.timezone, "to"))
    return await page.fetch_newest(
        session, query, ClockIn.at, ClockIn.id, ClockInOut.model_validate
    )


@router.post("/patrol/tracks", response_model=TrackStored)
async def add_track_points(
    data: TrackIn,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    user: GridWorkerUser,
) -> TrackStored:
    """Points of the caller's patrol track (1-1000, in any order, up to 7 days late). A point
    at an instant already stored for the worker is ignored, so a phone may resend a batch."""
    stored = await tracks.store(session, user, data, settings, clock.now())
    await session.commit()
    return stored


@router.get("/patrol/tracks", response_model=TrackOut)
async def track(
    session: SessionDep,
    settings: SettingsDep,
    user: CurrentUser,
    worker: str,
    date_: Annotated[date, Query(alias="date", ge=EARLIEST_DAY, le=LATEST_DAY, description=DAY)],
) -> TrackOut:
    """A grid worker's track of one local day as a GeoJSON Feature, for the worker or a
    dispatcher or supervisor whose scope holds the worker's grid."""
    start, _ = service.local_day(date_, settings.timezone)
    return await tracks.track_of(session, user, worker, date_, start)


@router.get("/stats/patrol", response_model=PatrolStats, tags=["statistics"])
@reads_from_replica
async def patrol_stats(
    session: SessionDep,
    settings: SettingsDep,
    user: Overseer,
    org_unit: str,
    date_: Annotated[date, Query(alias="date", ge=EARLIEST_DAY, le=LATEST_DAY, description=DAY)],
) -> PatrolStats:
    """Patrol coverage of a unit's grids on one day: only clock-ins inside the worker's own
    grid count; `coverage_rate` = grids patrolled / grids."""
    unit = await unit_in_scope(session, user, org_unit)
    return await service.patrol_stats(session, unit, date_, settings)
