"""A realistic district for measuring and checking statistics: `gridwork stats generate`.

Tickets are written straight into the tables (COPY on PostgreSQL), not through the service, so
the rollups are rebuilt afterwards. The mix follows what grid-management reports describe: about
a third of problems are solved on the spot by the grid worker, most of the rest are dispatched
and closed within a day or two, a few are rejected, merged, escalated or sent back; old tickets
are closed, recent ones are still open; the volume grows over the years. With them go the
history rows and parts the appraisal counts: the public's and the hotline's reports checked on
site by the grid's worker (some refuted), returns, assisting departments, verifications passed
and failed (a tenth late), and each worker's clock-ins on most days.
"""

import json
import math
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shapely.geometry import shape
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import Role, User
from app.auth.security import hash_password_sync
from app.db import Base
from app.orgs.models import Category, Department, Level, OrgUnit
from app.patrol.models import ClockIn
from app.stats import rollups
from app.stats.appraisal_rollups import OPEN311
from app.stats.models import ClosureRollupState
from app.tickets.machine import NOT_ACCEPTED, Status
from app.tickets.models import Ticket, TicketAssist, TicketHistory

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
    "id",
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


# The status each generated history step leads to.
STEP_TO = {
    "request_check": Status.checking,
    "confirm": Status.reported,
    "refute": Status.rejected,
    "return": Status.reported,
    "verify False": Status.in_progress,
    "verify True": Status.closed,
}
HISTORY_COLUMNS = [
    "ticket_id",
    "at",
    "actor",
    "action",
    "from_status",
    "to_status",
    "from_level",
    "to_level",
    "details",
]
ASSIST_COLUMNS = ["ticket_id", "department_code", "asked_at", "done_at", "done_by", "on_time"]
CLOCK_IN_COLUMNS = [
    "client_id",
    "worker",
    "worker_grid_code",
    "grid_code",
    "inside_grid",
    "lat",
    "lon",
    "at",
    "received_at",
]


@dataclass
class Batch:
    """Rows for each table, in its `*COLUMNS` order."""

    tickets: list[tuple[Any, ...]] = field(default_factory=list)
    history: list[tuple[Any, ...]] = field(default_factory=list)
    assists: list[tuple[Any, ...]] = field(default_factory=list)


class TicketMaker:
    """One ticket at a time, reported in [start, now), with the history rows and assisting
    parts the appraisal reads: checks of the public's and hotline reports (核实), returns,
    assisting departments, verifications (passed and failed) by the grid's worker."""

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
        self.departments = sorted({k.department for k in kinds if k.department})

    def _still_open(self, age_days: float) -> bool:
        """Nearly everything older than a month is finished; the last days are busy."""
        return self.rng.random() < max(0.003, 0.6 * math.exp(-age_days / 3))

    def _source(self, grid: Grid) -> tuple[str, str | None]:
        """Who filed it: mostly the grid's worker on patrol, some the public (Open311) or the
        hotline; a grid without a worker hears only from the hotline and the public."""
        draw = self.rng.random()
        if draw < 0.06:
            return OPEN311, None
        if draw < 0.10 or grid.reporter is None:
            return "hotline", None
        return "patrol", grid.reporter

    def _other_department(self, department: str | None) -> str | None:
        others = [d for d in self.departments if d != department]
        return self.rng.choice(others) if others else None

    def row(self, ticket_id: int, batch: Batch) -> None:
        rng = self.rng
        grid: Grid = self.grid()
        kind: Kind = self.kind()
        source, reporter = self._source(grid)
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
        self_resolved = reporter is not None and rng.random() < 0.36
        checked = reporter is None and grid.reporter is not None and rng.random() < 0.5
        outcome = rng.random()
        if checked:
            hours_after["check_asked"] = rng.uniform(5, 30) / 60
            hours_after["checked"] = hours_after["check_asked"] + rng.lognormvariate(0, 0.6)
        returned_by = assisting = None
        if self_resolved:
            status, department = Status.closed, None
            hours_after["closed"] = rng.uniform(5, 60) / 60
        elif checked and outcome < 0.12:
            status, department = Status.rejected, None  # refuted on site
        elif outcome < 0.03:
            status, department = Status.rejected, None
        elif outcome < 0.05:
            status, department = Status.merged, None
        else:
            status = self.open_status() if self._still_open(age_days) else Status.closed
            if rng.random() < 0.10:
                escalations = 1 if rng.random() < 0.8 else 2
            if status != Status.reported:
                start = hours_after.get("checked", 0)
                hours_after["dispatched"] = start + rng.uniform(3, 50) / 60
                if rng.random() < 0.03:
                    returned_by = self._other_department(department)
                if rng.random() < 0.05:
                    assisting = self._other_department(department)
            if status in (Status.feedback, Status.closed) and rng.random() < 0.06:
                reworks = 1 if rng.random() < 0.85 else 2
            handling = rng.lognormvariate(math.log(kind.hours * 0.35), 0.7) * (1 + escalations)
            if status in (Status.feedback, Status.closed):
                hours_after["feedback"] = hours_after["dispatched"] + handling
            if status == Status.closed:
                late = rng.random() < 0.1  # verified after the day allowed
                waited = rng.uniform(26, 60) if late else rng.uniform(0.2, 6)
                hours_after["closed"] = hours_after["feedback"] + waited
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
        if not self_resolved and status not in NOT_ACCEPTED:
            # As the scheduler would have marked it (and escalated it, where it could).
            overdue = escalations > 0 or (feedback or self.now) > deadline_start + limit
        if status == Status.closed and rng.random() < 0.6:
            status, rating = Status.rated, self.rating()
        # Leaders urge some of the slow ones (督办); callbacks send a few closed ones back (重办).
        urges = (1 if rng.random() < 0.7 else 2) if overdue and rng.random() < 0.2 else 0
        reopens = 1 if closed is not None and not self_resolved and rng.random() < 0.015 else 0
        level = LEVELS[min(escalations, 2)]
        owner = (grid.community, grid.town, grid.district)[min(escalations, 2)]

        def history(at: datetime, actor: str, action: str, **details: Any) -> None:
            to = STEP_TO[action] if action != "verify" else STEP_TO[f"verify {details['passed']}"]
            batch.history.append((ticket_id, at, actor, action, None, to, level, level, details))

        worker = grid.reporter or ""
        if "checked" in times:
            asked, answered = times["check_asked"], times["checked"]
            history(asked, "dispatcher", "request_check")
            deadline = asked + timedelta(hours=2)
            verdict = "refute" if status == Status.rejected else "confirm"
            history(
                answered,
                worker,
                verdict,
                deadline_at=deadline.isoformat(),
                on_time=answered < deadline,
            )
        if returned_by and dispatched:
            history(dispatched, "handler", "return", department_code=returned_by)
        if assisting and dispatched:
            done = feedback or (dispatched if rng.random() < 0.5 else None)
            batch.assists.append(
                (
                    ticket_id,
                    assisting,
                    dispatched,
                    done,
                    "handler" if done else None,
                    True if done else None,
                )
            )
        if feedback and worker:
            answered = closed or feedback
            for _ in range(reworks):  # failed checks of the fix, each followed by a new one
                history(feedback, worker, "verify", passed=False, on_time=True)
            if closed:
                due = feedback + timedelta(hours=24)
                history(
                    closed,
                    worker,
                    "verify",
                    passed=True,
                    due_at=due.isoformat(),
                    on_time=answered <= due,
                )
        batch.tickets.append(
            (
                ticket_id,
                source,
                status.value,
                level,
                owner,
                grid.code,
                grid.community,
                grid.town,
                grid.district,
                kind.code,
                department if status != Status.reported else None,
                reporter,
                f"{kind.name}（生成工单 {ticket_id}）",
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
        )

    def batches(self, count: int, first_id: int) -> Iterator[Batch]:
        for offset in range(0, count, BATCH):
            batch = Batch()
            for number in range(offset, min(count, offset + BATCH)):
                self.row(first_id + number, batch)
            yield batch


def clock_ins(
    rng: random.Random, grids: list[Grid], start: datetime, now: datetime, timezone: str
) -> Iterator[list[tuple[Any, ...]]]:
    """Each worker's patrol clock-ins over the local days of [start, now): on most days one
    to three, nearly all inside the worker's grid, in batches."""
    zone = ZoneInfo(timezone)
    first = start.astimezone(zone).date()
    days = (now.astimezone(zone).date() - first).days
    rows: list[tuple[Any, ...]] = []
    for grid in grids:
        if grid.reporter is None:
            continue
        for number in range(days):
            if rng.random() < 0.12:
                continue  # a day off
            date = first + timedelta(days=number)
            day = datetime(date.year, date.month, date.day, 8, tzinfo=zone)
            for _ in range(rng.choice((1, 1, 2, 3))):
                at = day + timedelta(minutes=rng.uniform(0, 600))
                inside = rng.random() < 0.95
                shift = 0.002 if inside else 0.02
                rows.append(
                    (
                        uuid.uuid4(),
                        grid.reporter,
                        grid.code,
                        grid.code if inside else None,
                        inside,
                        grid.lat + shift,
                        grid.lon,
                        at.astimezone(UTC),
                        at.astimezone(UTC),
                    )
                )
            if len(rows) >= BATCH:
                yield rows
                rows = []
    if rows:
        yield rows


async def _write(
    session: AsyncSession, model: Any, columns: list[str], rows: list[tuple[Any, ...]]
) -> None:
    if not rows:
        return
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        if "details" in columns:  # COPY takes JSON as text
            at = columns.index("details")
            rows = [(*row[:at], json.dumps(row[at]), *row[at + 1 :]) for row in rows]
        raw = await connection.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            model.__tablename__, records=rows, columns=columns
        )
    else:
        values = [dict(zip(columns, row, strict=True)) for row in rows]
        await session.execute(insert(model.__table__), values)


async def _write_batch(session: AsyncSession, batch: Batch) -> None:
    await _write(session, Ticket, COLUMNS, batch.tickets)
    await _write(session, TicketHistory, HISTORY_COLUMNS, batch.history)
    await _write(session, TicketAssist, ASSIST_COLUMNS, batch.assists)


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
    first_id = (await session.scalar(select(func.max(Ticket.id))) or 0) + 1
    async with _indexes_built_after(session, progress):
        for batch in maker.batches(tickets, first_id):
            await _write_batch(session, batch)
            await session.commit()
            written += len(batch.tickets)
            if progress:
                progress(f"{written:,} tickets ({time.perf_counter() - started:.0f} s)")
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT setval(pg_get_serial_sequence('tickets', 'id'), max(id)) FROM tickets")
        )
    patrolled = select(ClockIn.id).where(ClockIn.worker.in_([g.reporter for g in grids]))
    if await session.scalar(patrolled.limit(1)) is None:  # not when adding tickets
        for rows in clock_ins(rng, grids, start, now, timezone):
            await _write(session, ClockIn, CLOCK_IN_COLUMNS, rows)
            await session.commit()
        if progress:
            progress(f"clock-ins written ({time.perf_counter() - started:.0f} s)")
    started = time.perf_counter()
    rollup_rows = await rollups.rebuild(session, timezone)
    await session.commit()
    if progress:
        progress(f"rebuilt {rollup_rows:,} rollup rows ({time.perf_counter() - started:.0f} s)")
    if session.get_bind().dialect.name == "postgresql":
        connection = await session.connection()
        await connection.execute(text("ANALYZE"))
        await session.commit()
