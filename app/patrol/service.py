from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app import reference
from app.auth.models import Role, User
from app.config import Settings
from app.db import add_once
from app.errors import Invalid
from app.orgs.models import Level, OrgUnit
from app.orgs.service import in_subtree
from app.patrol.models import ClockIn
from app.patrol.schemas import ClockInIn, GridPatrol, PatrolStats, PatrolTotals
from app.patrol.tracks import track_minutes_by_grid

MAX_AHEAD = timedelta(minutes=5)
MAX_BEHIND = timedelta(days=7)


async def _existing(session: AsyncSession, user: User, data: ClockInIn) -> ClockIn | None:
    return await session.scalar(
        select(ClockIn).where(ClockIn.worker == user.username, ClockIn.client_id == data.client_id)
    )


async def clock_in(
    session: AsyncSession, user: User, data: ClockInIn, settings: Settings, now: datetime
) -> tuple[ClockIn, bool]:
    """Records a clock-in; returns (record, created). A resend of the same `client_id` returns
    the first record, also when both arrive at once."""
    if (existing := await _existing(session, user, data)) is not None:
        return existing, False
    at = data.at or now
    if at > now + MAX_AHEAD:
        raise Invalid("at is in the future", loc=["body", "at"])
    if at < now - MAX_BEHIND:
        raise Invalid("at is more than 7 days ago", loc=["body", "at"])
    assert user.org_unit_code is not None
    grids = await reference.grid_map(session)
    match = grids.locate(data.lat, data.lon, settings.gps_drift_metres, user.org_unit_code)
    grid_code = match.code if match else None
    record = ClockIn(
        client_id=data.client_id,
        worker=user.username,
        worker_grid_code=user.org_unit_code,
        grid_code=grid_code,
        inside_grid=grid_code == user.org_unit_code,
        lat=data.lat,
        lon=data.lon,
        at=at,
        received_at=now,
    )
    return await add_once(session, record, lambda: _existing(session, user, data))


def visible_clock_ins(user: User) -> ColumnElement[bool]:
    """Workers see their own; dispatchers and supervisors those of workers of, or points in,
    their area; admins all."""
    if user.role == Role.admin:
        return true()
    if user.role == Role.grid_worker:
        return ClockIn.worker == user.username
    assert user.org_unit is not None
    return in_area(user.org_unit)


def in_area(unit: OrgUnit) -> ColumnElement[bool]:
    return or_(
        in_subtree(ClockIn.worker_grid_code, unit.path), in_subtree(ClockIn.grid_code, unit.path)
    )


def local_day(day: date, timezone: str) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=ZoneInfo(timezone))
    return start, start + timedelta(days=1)


async def patrol_stats(
    session: AsyncSession, unit: OrgUnit, day: date, settings: Settings
) -> PatrolStats:
    """Per grid of `unit`'s subtree: clock-ins inside the grid by its own workers on `day`
    (local), distinct workers, patrolled or not, and their tracks' minutes inside it."""
    start, end = local_day(day, settings.timezone)
    counted = and_(
        ClockIn.grid_code == OrgUnit.code,
        ClockIn.inside_grid,
        ClockIn.at >= start,
        ClockIn.at < end,
    )
    rows = (
        await session.execute(
            select(OrgUnit.code, func.count(ClockIn.id), func.count(ClockIn.worker.distinct()))
            .outerjoin(ClockIn, counted)
            .where(OrgUnit.level == Level.grid, in_subtree(OrgUnit.code, unit.path))
            .group_by(OrgUnit.code)
            .order_by(OrgUnit.code)
        )
    ).all()
    minutes = await track_minutes_by_grid(session, unit, start, end)
    items = [
        GridPatrol(
            grid_code=code,
            clock_ins=count,
            workers=workers,
            patrolled=count > 0,
            track_minutes=minutes.get(code, 0.0),
        )
        for code, count, workers in rows
    ]
    patrolled = sum(item.patrolled for item in items)
    return PatrolStats(
        items=items,
        totals=PatrolTotals(
            grids=len(items),
            patrolled=patrolled,
            clock_ins=sum(item.clock_ins for item in items),
            coverage_rate=patrolled / len(items) if items else None,
        ),
    )
