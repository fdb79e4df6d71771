"""Reference data: the grid map built from the org units, departments, categories, the working
calendar's own days and the rollups' state. Nearly every request reads some of it and hardly
any changes it, so each process keeps it in memory, stamped with the version it was read at.

The stamp is one row (`reference_version`) that a database trigger bumps in the transaction of
any change to those tables, whoever makes it (the API, an import, the command line, psql).
A process compares its stamp with the stored one at most every `check_seconds` and reloads
when they differ, so every process sees a change within that time. The process that makes the
change forgets its copy as the change commits or rolls back, and a transaction that has
changed reference data reads its own uncommitted view without keeping it.
"""

import asyncio
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from types import SimpleNamespace
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, CheckConstraint, Delete, Insert, Integer, Update, event, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.errors import Invalid, NotFound
from app.orgs.geo import GridMap
from app.orgs.models import UNIT_COLUMNS, Category, Department, Level, OrgUnit
from app.stats.models import ClosureRollupState
from app.timing.calendar import WorkingCalendar, parse_periods
from app.timing.models import CalendarDay

# The tables whose changes bump the stamp (the triggers of migration 0015).
REFERENCE_TABLES = ("org_units", "departments", "categories", "calendar_days")
STATE_TABLES = ("closure_rollup_state",)
WATCHED_TABLES = REFERENCE_TABLES + STATE_TABLES
# Session.info key of the process's ReferenceCache.
CACHE_KEY = "reference"
# Connection.info key: this connection's transaction has changed reference data.
_CHANGED_HERE = "reference_changed"


class ReferenceVersion(Base):
    """One row whose version grows with every change of reference data."""

    __tablename__ = "reference_version"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


RefData = TypeVar("RefData", OrgUnit, Department, Category)
KIND = {OrgUnit: "org unit", Department: "department", Category: "category"}


def missing(model: type[Any], code: str, loc: list[str | int] | None) -> Exception:
    """Unknown is a 404, or a 422 at `loc` when a request body names it."""
    message = f"{KIND[model]} {code!r} does not exist"
    return NotFound(message) if loc is None else Invalid(message, loc=loc)


@dataclass
class Snapshot:
    """Reference data as of one version, to read only: rows are plain objects with the
    columns of their model (org units without their boundaries, which the grid map built from
    them holds)."""

    version: int
    org_units: Mapping[str, OrgUnit]  # without their boundaries
    departments: Mapping[str, Department]
    categories: Mapping[str, Category]
    calendar_days: Mapping[date, bool]
    rollups_timezone: str | None
    _derived: dict[Any, Any] = field(default_factory=dict)
    # A lock per event loop (a process may run several: tests, the command line).
    _building: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]" = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def get(
        self,
        model: type[OrgUnit | Department | Category],
        code: str,
        loc: list[str | int] | None = None,
    ) -> Any:
        rows: Mapping[str, Any] = {
            OrgUnit: self.org_units,
            Department: self.departments,
            Category: self.categories,
        }[model]
        if (row := rows.get(code)) is None:
            raise missing(model, code, loc)
        return row

    def calendar(self, timezone: str, working_periods: str) -> WorkingCalendar:
        key = ("calendar", timezone, working_periods)
        if key not in self._derived:
            periods = parse_periods(working_periods)
            self._derived[key] = WorkingCalendar(ZoneInfo(timezone), periods, self.calendar_days)
        calendar: WorkingCalendar = self._derived[key]
        return calendar

    async def grid_map(self, session: AsyncSession) -> GridMap:
        """The map of the grids' boundaries, built once per version (concurrent callers wait
        for the first)."""
        async with self._building.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
            if "grid_map" not in self._derived:
                rows = (
                    await session.execute(
                        select(OrgUnit.code, OrgUnit.path, OrgUnit.boundary).where(
                            OrgUnit.level == Level.grid
                        )
                    )
                ).all()
                shapes = [(code, path, boundary) for code, path, boundary in rows if boundary]
                self._derived["grid_map"] = await asyncio.to_thread(GridMap, shapes)
        grid_map: GridMap = self._derived["grid_map"]
        return grid_map


async def _load(session: AsyncSession, version: int) -> Snapshot:
    async def rows_of(model: type[Base], columns: Any = None) -> dict[Any, Any]:
        statement = select(*(model.__table__.c if columns is None else columns))
        return {row[0]: SimpleNamespace(**row._mapping) for row in await session.execute(statement)}

    days = await session.execute(select(CalendarDay.day, CalendarDay.working))
    return Snapshot(
        version=version,
        org_units=await rows_of(OrgUnit, UNIT_COLUMNS),
        departments=await rows_of(Department),
        categories=await rows_of(Category),
        calendar_days={day: working for day, working in days},
        rollups_timezone=await session.scalar(select(ClosureRollupState.timezone)),
    )


_VERSION = select(ReferenceVersion.version)


class ReferenceCache:
    """A process's copy of the reference data of one database."""

    def __init__(self, check_seconds: float) -> None:
        self.check_seconds = check_seconds
        self._snapshot: Snapshot | None = None
        self._checked_at = 0.0

    def forget(self) -> None:
        self._snapshot = None

    def watch(self, engine: AsyncEngine) -> None:
        """Notes the transactions of `engine` that change reference data: forgets the copy as
        soon as one does, and again as it commits or rolls back."""
        event.listen(engine.sync_engine, "before_execute", self._note_change)
        event.listen(engine.sync_engine, "commit", self._transaction_ended)
        event.listen(engine.sync_engine, "rollback", self._transaction_ended)

    def _note_change(self, connection: Connection, statement: Any, *_: Any) -> None:
        writes = isinstance(statement, Insert | Update | Delete)
        if writes and getattr(statement.table, "name", None) in WATCHED_TABLES:
            connection.info[_CHANGED_HERE] = True
            self.forget()

    def _transaction_ended(self, connection: Connection) -> None:
        if connection.invalidated:  # its connection is gone, and with it what it changed
            return
        if connection.info.pop(_CHANGED_HERE, False):
            self.forget()

    async def snapshot(self, session: AsyncSession) -> Snapshot:
        connection = await session.connection()
        if connection.info.get(_CHANGED_HERE):  # this transaction's own view, not kept
            return await _load(session, await session.scalar(_VERSION) or 0)
        now = time.monotonic()
        current = self._snapshot
        if current is not None and now - self._checked_at < self.check_seconds:
            return current
        # The version first: the data read after it are at least as new, and a change made in
        # between is read again at the next check.
        version = await session.scalar(_VERSION) or 0
        if current is None or current.version != version:
            current = await _load(session, version)
        if self._snapshot is None or self._snapshot.version <= version:
            self._snapshot, self._checked_at = current, now
        return current


async def current(session: AsyncSession) -> Snapshot:
    """The reference data, as of at most the cache's `check_seconds` ago (or as changed in
    this session's own transaction; read afresh for a session of no Database)."""
    cache: ReferenceCache | None = session.info.get(CACHE_KEY)
    if cache is None:
        return await _load(session, await session.scalar(_VERSION) or 0)
    return await cache.snapshot(session)


async def unit(session: AsyncSession, code: str, loc: list[str | int] | None = None) -> OrgUnit:
    """An org unit to read (its columns but its boundary); unknown is a 404, or a 422 at
    `loc`."""
    found: OrgUnit = (await current(session)).get(OrgUnit, code, loc)
    return found


async def grid_map(session: AsyncSession) -> GridMap:
    return await (await current(session)).grid_map(session)
