"""Patrol tracks: the points a grid worker's phone records on patrol, stored once per worker
and instant, read back as a day's line, and counted as time spent inside the worker's grid.

`minutes_in_grid` exists twice, for one worker's day in Python and for many in SQL (patrol
statistics); they sit side by side here so they cannot drift apart.
"""

import itertools
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, case, cast, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import Role, User
from app.config import Settings
from app.errors import Forbidden, Invalid, NotFound
from app.orgs.models import OrgUnit
from app.orgs.service import in_subtree
from app.patrol.models import TrackPoint
from app.patrol.schemas import LineString, TrackIn, TrackOut, TrackProperties, TrackStored
from app.reference import grid_map
from app.tickets.nearby import distance_m

MAX_AHEAD = timedelta(minutes=5)
MAX_BEHIND = timedelta(days=7)
# Two consecutive points further apart than this are a pause, not patrol time.
LONGEST_GAP = timedelta(minutes=10)


def _check_times(data: TrackIn, now: datetime) -> None:
    """The whole batch is refused when one point is out of range (422 naming each)."""
    errors = []
    for index, point in enumerate(data.points):
        if point.at > now + MAX_AHEAD:
            errors.append({"loc": ["body", "points", index, "at"], "msg": "is in the future"})
        elif point.at < now - MAX_BEHIND:
            errors.append({"loc": ["body", "points", index, "at"], "msg": "is over 7 days ago"})
    if errors:
        raise Invalid(f"{len(errors)} point(s) out of range: none was stored", errors=errors)


async def store(
    session: AsyncSession, user: User, data: TrackIn, settings: Settings, now: datetime
) -> TrackStored:
    """Stores the new points of a batch; a point at an instant already stored for the worker
    (in this batch or an earlier one) is ignored."""
    _check_times(data, now)
    assert user.org_unit_code is not None
    grids = await grid_map(session)
    rows: dict[datetime, dict[str, Any]] = {}
    for point in data.points:
        match = grids.locate(point.lat, point.lon, settings.gps_drift_metres, user.org_unit_code)
        rows.setdefault(
            point.at,
            {
                "worker": user.username,
                "at": point.at,
                "worker_grid_code": user.org_unit_code,
                "lat": point.lat,
                "lon": point.lon,
                "accuracy_m": point.accuracy_m,
                "in_grid": match is not None and match.code == user.org_unit_code,
                "received_at": now,
            },
        )
    dialect_insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    statement = (
        dialect_insert(TrackPoint)
        .values(list(rows.values()))
        .on_conflict_do_nothing(index_elements=[TrackPoint.worker, TrackPoint.at])
        .returning(TrackPoint.at)
    )
    stored = len((await session.execute(statement)).all())
    return TrackStored(stored=stored, ignored=len(data.points) - stored)


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


async def track_of(
    session: AsyncSession, viewer: User, username: str, day: date, start: datetime
) -> TrackOut:
    """The worker's track of the local day beginning at `start`, for the worker themselves or
    staff whose scope holds the worker's grid."""
    if viewer.role not in (Role.grid_worker, Role.dispatcher, Role.supervisor, Role.admin):
        raise Forbidden(f"a {viewer.role} may not read patrol tracks")
    worker = await session.scalar(select(User).where(User.username == username))
    if worker is None or worker.role != Role.grid_worker or not _may_see(viewer, worker):
        raise NotFound(f"grid worker {username!r} does not exist or is outside your scope")
    points = (
        await session.scalars(
            select(TrackPoint)
            .where(
                TrackPoint.worker == username,
                TrackPoint.at >= start,
                TrackPoint.at < start + timedelta(days=1),
            )
            .order_by(TrackPoint.at)
        )
    ).all()
    length = sum(distance_m(a.lat, a.lon, b.lat, b.lon) for a, b in itertools.pairwise(points))
    return TrackOut(
        geometry=LineString(coordinates=[(p.lon, p.lat) for p in points])
        if len(points) >= 2
        else None,
        properties=TrackProperties(
            worker=username,
            date=day,
            points=len(points),
            distance_m=round(length, 1),
            minutes_in_grid=minutes_in_grid(points),
        ),
    )


def _may_see(viewer: User, worker: User) -> bool:
    if viewer.role == Role.admin:
        return True
    if viewer.role == Role.grid_worker:
        return viewer.username == worker.username
    assert viewer.org_unit is not None and worker.org_unit is not None
    return worker.org_unit.path.startswith(viewer.org_unit.path)


def minutes_in_grid(points: Sequence[TrackPoint]) -> float:
    """Time between consecutive points (in time order) both inside the worker's grid, gaps
    over LONGEST_GAP left out."""
    seconds = sum(
        (b.at - a.at).total_seconds()
        for a, b in itertools.pairwise(points)
        if a.in_grid and b.in_grid and b.at - a.at <= LONGEST_GAP
    )
    return round(seconds / 60, 2)


def _epoch_seconds(dialect: str, moment: Any) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.extract("epoch", moment)
    return (func.julianday(moment) - 2440587.5) * 86400.0


async def track_minutes_by_grid(
    session: AsyncSession, unit: OrgUnit, start: datetime, end: datetime
) -> dict[str, float]:
    """`minutes_in_grid` summed over the workers of each grid of `unit`'s subtree, for the
    points in [start, end): one window query."""
    dialect = _dialect(session)

    def previous(column: Any) -> ColumnElement[Any]:
        return func.lag(column).over(partition_by=TrackPoint.worker, order_by=TrackPoint.at)

    steps = (
        select(
            TrackPoint.worker_grid_code.label("grid"),
            and_(TrackPoint.in_grid, previous(TrackPoint.in_grid)).label("both_in"),
            (
                _epoch_seconds(dialect, TrackPoint.at)
                - _epoch_seconds(dialect, previous(TrackPoint.at))
            ).label("gap"),
        )
        .where(
            in_subtree(TrackPoint.worker_grid_code, unit.path),
            TrackPoint.at >= start,
            TrackPoint.at < end,
        )
        .subquery()
    )
    counted = and_(steps.c.both_in, steps.c.gap <= LONGEST_GAP.total_seconds())
    seconds = func.sum(case((counted, cast(steps.c.gap, Float)), else_=literal(0.0)))
    rows = await session.execute(select(steps.c.grid, seconds).group_by(steps.c.grid))
    return {grid: round(float(total or 0) / 60, 2) for grid, total in rows}
