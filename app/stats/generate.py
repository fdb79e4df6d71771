"""A realistic district for measuring and checking statistics: `gridwork stats generate`.

Tickets are written straight into the tables (COPY on PostgreSQL), not through the service, so
the rollups are rebuilt afterwards. The mix follows what grid-management reports describe: about
a third of problems are solved on the spot by the grid worker, most of the rest are dispatched
and closed within a day or two, a few are rejected, merged, escalated or sent back; old tickets
are closed, recent ones are still open; the volume grows over the years.
"""

import math
import random
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shapely.geometry import shape
from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import Role, User
from app.auth.security import hash_password_sync
from app.db import Base
from app.orgs.models import Category, Department, Level, OrgUnit
from app.stats import rollups
from app.stats.models import ClosureRollupState
from app.tickets.machine import Status
from app.tickets.models import Ticket

GENERATED_DISTRICT = "GD"
GENERATED_PASSWORD = "gridwork-generated"
CATEGORIES = [  # code, name, hours allowed, relative frequency, department
    ("garbage", "暴露垃圾", 4, 20, "CG"),
    ("stacking", "乱堆物堆料", 24, 12, "CG"),
    ("street_vending", "占道经营", 4, 10, "CG"),
    ("illegal_building", "违法建设", 120, 3, "ZJ"),
    ("manhole", "井盖缺失破损", 4, 3, "SZ"),
    ("road_damage", "道路破损", 48, 5, "SZ"),
    ("fire_lane", "消防通道堵塞", 2, 4, "XF"),
    ("greenery", "绿化破坏", 48, 3, "YL"),
    ("flyposting", "违规张贴小广告", 24, 8, "CG"),
    ("river_pollution", "河道污染", 48, 2, "SW"),
    ("noise", "噪音扰民", 24, 5, "HB"),
    ("dispute", "邻里纠纷", 72, 4, "ZZ"),
    ("safety_hazard", "安全隐患", 24, 4, "AJ"),
    ("street_light", "路灯损坏", 72, 3, "SZ"),
    ("waterlogging", "积水内涝", 12, 2, "SW"),
    ("parking", "违规停车", 4, 6, "JJ"),
    ("dogs", "犬只扰民", 72, 2, "GA"),
    ("drain_blocked", "排水设施堵塞", 24, 2, "SW"),
    ("empty_house", "空置房屋隐患", 120, 1, "ZJ"),
    ("group_rental", "群租房", 120, 1, "GA"),
]
DEPARTMENTS = {
    "CG": "城市管理和综合执法局",
    "ZJ": "住房城乡建设和水利局",
    "SZ": "市政设施管理所",
    "XF": "消防救援大队",
    "YL": "园林绿化所",
    "SW": "水务所",
    "HB": "生态环境分局",
    "ZZ": "综治中心",
    "AJ": "应急管理局",
    "JJ": "交警大队",
    "GA": "公安分局",
}
OPEN_MIX = [  # where an open ticket waits
    (Status.reported, 15),
    (Status.dispatched, 20),
    (Status.in_progress, 45),
    (Status.suspended, 5),
    (Status.feedback, 15),
]
RATINGS = [(5, 55), (4, 25), (3, 12), (2, 5), (1, 3)]
LEVELS = ("community", "town", "district")
COLUMNS = [
    "source",
    "status",
    "level",
    "owner_unit_code",
    "grid_code",
    "community_code",
    "town_code",
    "district_code",
    "category_code",
    "department_code",
    "reporter",
    "description",
    "lat",
    "lon",
    "urgent",
    "self_resolved",
    "reported_at",
    "dispatched_at",
    "feedback_at",
    "closed_at",
    "time_limit_value",
    "time_limit_unit",
    "deadline_started_at",
    "warning_at",
    "deadline_at",
    "suspended_at",
    "overdue",
    "escalation_count",
    "rework_count",
    "extension_count",
    "rating",
    "urge_count",
    "reopen_count",
    "updated_at",
    "version",
]
BATCH = 50_000


@dataclass(frozen=True)
class Grid:
    code: str
    community: str
    town: str
    district: str
    lat: float
    lon: float
    reporter: str | None
    weight: float


@dataclass(frozen=True)
class Kind:
    code: str
    name: str
    hours: int
    department: str | None
    weight: float


def _weighted(rng: random.Random, pairs: Sequence[tuple[Any, float]]) -> Callable[[], Any]:
    values = [value for value, _ in pairs]
    cumulative: list[float] = []
    total = 0.0
    for _, weight in pairs:
        total += weight
        cumulative.append(total)
    return lambda: rng.choices(values, cum_weights=cumulative)[0]


def _square(index: int) -> dict[str, Any]:
    """The `index`th grid square of about 1 km², 40 to a row."""
    west, south = 113.0 + (index % 40) * 0.01, 23.0 + (index // 40) * 0.01
    east, north = west + 0.01, south + 0.01
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


async def build_district(session: AsyncSession, now: datetime) -> None:
    """District GD: 10 towns of 10 communities of 8 grids (800 grids of about 1 km²), the
    categories and departments above, and a grid worker per grid."""
    units: list[OrgUnit] = []
    workers: list[User] = []
    password = hash_password_sync(GENERATED_PASSWORD)

    def unit(code: str, name: str, level: Level, parent: OrgUnit | None = None) -> OrgUnit:
        made = OrgUnit(
            code=code,
            name=name,
            level=level,
            parent_code=parent.code if parent else None,
            path=f"{parent.path if parent else '/'}{code}/",
            created_at=now,
        )
        units.append(made)
        return made

    district = unit(GENERATED_DISTRICT, "生成区", Level.district)
    for t in range(10):
        town = unit(f"GD-T{t:02d}", f"第{t + 1}街道", Level.town, district)
        for c in range(10):
            community = unit(
                f"{town.code}-C{c:02d}", f"第{t + 1}街道第{c + 1}社区", Level.community, town
            )
            for g in range(8):
                grid = unit(
                    f"{community.code}-G{g}",
                    f"{community.code} 第{g + 1}网格",
                    Level.grid,
                    community,
                )
                grid.boundary = _square(len(workers))
                workers.append(
                    User(
                        username=f"gw-{grid.code}",
                        password_hash=password,
                        display_name=f"网格员 {grid.code}",
                        role=Role.grid_worker,
                        org_unit_code=grid.code,
                        created_at=now,
                    )
                )
    session.add_all(units)
    await session.flush()
    session.add_all(
        Department(code=f"GD-{code}", name=name, org_unit_code="GD", created_at=now)
        for code, name in DEPARTMENTS.items()
    )
    await session.flush()
    session.add_all(
        Category(
            code=code,
            name=name,
            time_limit_value=hours,
            time_limit_unit="hours",
            default_department_code=f"GD-{department}",
            created_at=now,
        )
        for code, name, hours, _, department in CATEGORIES
    )
    session.add_all(workers)
    await session.flush()


async def _grids(session: AsyncSession, district: OrgUnit, rng: random.Random) -> list[Grid]:
    """The district's grids, each with a worker who reports (if any) and a busyness: a few
    grids (markets, old quarters) report far more than others."""
    units = (
        await session.scalars(
            select(OrgUnit).where(OrgUnit.path.startswith(district.path)).order_by(OrgUnit.path)
        )
    ).all()
    by_code = {unit.code: unit for unit in units}
    workers = select(User.org_unit_code, User.username).where(User.role == Role.grid_worker)
    reporters = {
        grid: username
        for grid, username in await session.execute(workers.order_by(User.username.desc()))
    }
    grids = []
    for unit in units:
        if unit.level != Level.grid or unit.parent_code is None:
            continue
        community = by_code[unit.parent_code]
        point = shape(unit.boundary).representative_point() if unit.boundary else None
        grids.append(
            Grid(
                code=unit.code,
                community=community.code,
                town=community.parent_code or "",
                district=district.code,
                lat=point.y if point else 23.0,
                lon=point.x if point else 113.0,
                reporter=reporters.get(unit.code),
                weight=rng.lognormvariate(0, 0.6),
            )
        )
    return grids


async def _kinds(session: AsyncSession) -> list[Kind]:
    frequency = {code: weight for code, _, _, weight, _ in CATEGORIES}
    kinds = []
    for category in (await session.scalars(select(Category).order_by(Category.code))).all():
        hours = {"minutes": 1 / 60, "days": 24, "working_days": 34}.get(category.time_limit_unit, 1)
        kinds.append(
            Kind(
                code=category.code,
                name=category.name,
                hours=max(1, round(category.time_limit_value * hours)),
                department=category.default_department_code,
                weight=frequency.get(category.code, 3),
            )
        )
    return kinds


class TicketMaker:
    """One ticket row at a time, in `COLUMNS` order, reported in [start, now)."""

    def __init__(
        self,
        rng: random.Random,
        grids: list[Grid],
        kinds: list[Kind],
        start: datetime,
        now: datetime,
    ) -> None:
        self.rng = rng
        self.now = now
        self.start = start
        self.span = (now - start).total_seconds()
        self.grid = _weighted(rng, [(g, g.weight) for g in grids])
        self.kind = _weighted(rng, [(k, k.weight) for k in kinds])
        self.open_status = _weighted(rng, OPEN_MIX)
        self.rating = _weighted(rng, RATINGS)

    def _still_open(self, age_days: float) -> bool:
        """Nearly everything older than a month is finished; the last days are busy."""
        return self.rng.random() < max(0.003, 0.6 * math.exp(-age_days / 3))

    def row(self, number: int) -> tuple[Any, ...]:
        rng = self.rng
        grid: Grid = self.grid()
        kind: Kind = self.kind()
        # Volume grows over the years: later times are denser.
        reported = self.start + timedelta(seconds=self.span * rng.random() ** 0.8)
        age_days = (self.now - reported).total_seconds() / 86400
        limit = timedelta(hours=kind.hours)
        status: Status
        department = kind.department
        escalations = reworks = 0
        rating = None
        overdue = False
        hours_after: dict[str, float] = {}  # hours after the report of each step taken
        self_resolved = rng.random() < 0.33
        outcome = rng.random()
        if self_resolved:
            status, department = Status.closed, None
            hours_after["closed"] = rng.uniform(5, 60) / 60
        elif outcome < 0.03:
            status, department = Status.rejected, None
        elif outcome < 0.05:
            status, department = Status.merged, None
        else:
            status = self.open_status() if self._still_open(age_days) else Status.closed
            if rng.random() < 0.10:
                escalations = 1 if rng.random() < 0.8 else 2
            if status != Status.reported:
                hours_after["dispatched"] = rng.uniform(3, 50) / 60
            if status in (Status.feedback, Status.closed) and rng.random() < 0.06:
                reworks = 1 if rng.random() < 0.85 else 2
            handling = rng.lognormvariate(math.log(kind.hours * 0.35), 0.7) * (1 + escalations)
            if status in (Status.feedback, Status.closed):
                hours_after["feedback"] = hours_after["dispatched"] + handling
            if status == Status.closed:
                hours_after["closed"] = hours_after["feedback"] + rng.uniform(0.2, 6)
            if status == Status.suspended:
                hours_after["suspended"] = hours_after["dispatched"] + handling / 2
        # Steps that would lie in the future are drawn closer, in order, before now.
        last = max(hours_after.values(), default=0.0)
        scale = min(1.0, age_days * 24 * 0.99 / last) if last else 1.0
        times = {
            step: reported + timedelta(hours=hours * scale) for step, hours in hours_after.items()
        }
        dispatched, feedback = times.get("dispatched"), times.get("feedback")
        closed, suspended = times.get("closed"), times.get("suspended")
        deadline_start = dispatched or reported
        if not self_resolved and status not in (Status.rejected, Status.merged):
            # As the scheduler would have marked it (and escalated it, where it could).
            overdue = escalations > 0 or (feedback or self.now) > deadline_start + limit
        if status == Status.closed and rng.random() < 0.6:
            status, rating = Status.rated, self.rating()
        # Leaders urge some of the slow ones (督办); callbacks send a few closed ones back (重办).
        urges = (1 if rng.random() < 0.7 else 2) if overdue and rng.random() < 0.2 else 0
        reopens = 1 if closed is not None and not self_resolved and rng.random() < 0.015 else 0
        level = LEVELS[min(escalations, 2)]
        owner = (grid.community, grid.town, grid.district)[min(escalations, 2)]
        return (
            "patrol" if grid.reporter else "hotline",
            status.value,
            level,
            owner,
            grid.code,
            grid.community,
            grid.town,
            grid.district,
            kind.code,
            department if status != Status.reported else None,
            grid.reporter,
            f"{kind.name}（生成工单 {number}）",
            grid.lat + rng.uniform(-0.003, 0.003),
            grid.lon + rng.uniform(-0.003, 0.003),
            rng.random() < 0.03,
            self_resolved,
            reported,
            dispatched,
            feedback,
            closed,
            kind.hours,
            "hours",
            deadline_start,
            deadline_start + limit * 0.8,
            deadline_start + limit,
            suspended,
            overdue,
            escalations,
            reworks,
            0,
            rating,
            urges,
            reopens,
            max([reported, *times.values()]),
            1
            + escalations
            + 2 * reworks
            + urges
            + 3 * reopens
            + (status != Status.reported)
            + (closed is not None),
        )

    def batches(self, count: int, first: int) -> Iterator[list[tuple[Any, ...]]]:
        for offset in range(0, count, BATCH):
            yield [self.row(first + offset + i) for i in range(min(BATCH, count - offset))]


async def _write(session: AsyncSession, rows: list[tuple[Any, ...]]) -> None:
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        raw = await connection.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            "tickets", records=rows, columns=COLUMNS
        )
    else:
        values = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
        await session.execute(insert(Ticket), values)


@asynccontextmanager
async def _indexes_built_after(
    session: AsyncSession, progress: Callable[[str], None] | None
) -> AsyncIterator[None]:
    """Into an empty PostgreSQL tickets table, loads without the (non-unique) indexes and
    builds them at the end: ten times faster than keeping them up to date row by row."""
    connection = await session.connection()
    empty = await session.scalar(select(Ticket.id).limit(1)) is None
    if connection.dialect.name != "postgresql" or not empty:
        yield
        return
    indexes = [i for i in Base.metadata.tables["tickets"].indexes if not i.unique]
    for index in indexes:
        await connection.run_sync(index.drop)
    await session.commit()
    try:
        yield
    finally:
        connection = await session.connection()
        for index in indexes:
            if progress:
                progress(f"building {index.name}")
            await connection.run_sync(index.create)
        await session.commit()


async def generate_tickets(
    session: AsyncSession,
    district_code: str,
    tickets: int,
    years: float,
    now: datetime,
    seed: int,
    timezone: str,
    progress: Callable[[str], None] | None = None,
) -> None:
    """`tickets` tickets over the `years` before `now` across the grids of `district_code`,
    committed in batches; then the rollups are rebuilt (and, on PostgreSQL, statistics
    refreshed)."""
    rng = random.Random(seed)
    district = await session.get(OrgUnit, district_code)
    if district is None or district.level != Level.district:
        raise ValueError(f"no district {district_code!r}")
    grids = await _grids(session, district, rng)
    kinds = await _kinds(session)
    if not grids or not kinds:
        raise ValueError(f"district {district_code!r} needs grids and categories")
    start = now - timedelta(days=365.25 * years)
    maker = TicketMaker(rng, grids, kinds, start.astimezone(UTC), now.astimezone(UTC))
    # The rollups miss what is written here until they are rebuilt: do not read them meanwhile.
    await session.execute(delete(ClosureRollupState))
    await session.commit()
    started = time.perf_counter()
    written = 0
    async with _indexes_built_after(session, progress):
        for rows in maker.batches(tickets, 1):
            await _write(session, rows)
            await session.commit()
            written += len(rows)
            if progress:
                progress(f"{written:,} tickets ({time.perf_counter() - started:.0f} s)")
    started = time.perf_counter()
    rollup_rows = await rollups.rebuild(session, timezone)
    await session.commit()
    if progress:
        progress(f"rebuilt {rollup_rows:,} rollup rows ({time.perf_counter() - started:.0f} s)")
    if session.get_bind().dialect.name == "postgresql":
        connection = await session.connection()
        await connection.execute(text("ANALYZE"))
        await session.commit()
