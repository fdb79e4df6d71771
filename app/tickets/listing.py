"""Ticket lists (`GET /tickets`): each shape of list (which filters it has, the caller's role
and unit level, whether it pages on from a cursor) is one statement, built and compiled once
(`app/direct.py`), with every value bound. SQLAlchemy builds, keys and runs a new statement
object for about a millisecond more than one it has seen before."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import BindParameter, ColumnElement, bindparam
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.direct import DirectStatement
from app.orgs.models import Level, OrgUnit
from app.pagination import Page, PageParams, newest_first_of
from app.tickets import deadlines
from app.tickets.deadlines import WarningLevel
from app.tickets.machine import Status
from app.tickets.models import URGED, Ticket
from app.tickets.service import (
    AREA_COLUMNS,
    TICKET_ROW,
    awaiting,
    bound_caller,
    caller_params,
    caller_shape,
    visible_clause,
    visible_parts,
)

_NOW: BindParameter[datetime] = bindparam("now")  # typed as the columns it is compared with


@dataclass(frozen=True)
class Filters:
    """What a list asks for, beyond the caller's scope (API.md, `GET /tickets`)."""

    statuses: Sequence[Status] = ()
    levels: Sequence[Level] = ()
    area: OrgUnit | None = None  # tickets of this unit's subtree
    category: str | None = None
    department: str | None = None
    overdue: bool | None = None
    warning: WarningLevel | None = None
    reported_from: datetime | None = None  # inclusive
    reported_to: datetime | None = None  # exclusive
    awaiting: bool = False  # the caller's to-do list
    urged: bool | None = None

    def __post_init__(self) -> None:
        # A status or level asked for twice is asked for once: one shape, one statement.
        object.__setattr__(self, "statuses", tuple(dict.fromkeys(self.statuses)))
        object.__setattr__(self, "levels", tuple(dict.fromkeys(self.levels)))

    def params(self, now: datetime) -> dict[str, Any]:
        """The values of the parameters its statement binds."""
        params: dict[str, Any] = {"now": now}
        params.update({f"status_{i}": s.value for i, s in enumerate(self.statuses)})
        params.update({f"level_{i}": v.value for i, v in enumerate(self.levels)})
        if self.area is not None:
            params["area"] = self.area.code
        named = ("category", "department", "reported_from", "reported_to")
        params.update({name: getattr(self, name) for name in named})
        return params


class _Shape(NamedTuple):
    role: str
    level: str | None
    statuses: int
    levels: int
    area_level: str | None
    category: bool
    department: bool
    overdue: bool | None
    warning: WarningLevel | None
    reported_from: bool
    reported_to: bool
    awaiting: bool
    urged: bool | None
    after: bool


def _shape(user: User, filters: Filters, after: bool) -> _Shape:
    return _Shape(
        *caller_shape(user),
        statuses=len(filters.statuses),
        levels=len(filters.levels),
        area_level=None if filters.area is None else filters.area.level,
        category=filters.category is not None,
        department=filters.department is not None,
        overdue=filters.overdue,
        warning=filters.warning,
        reported_from=filters.reported_from is not None,
        reported_to=filters.reported_to is not None,
        awaiting=filters.awaiting,
        urged=filters.urged,
        after=after,
    )


def _bound(name: str, count: int) -> list[Any]:
    """`count` parameters for an IN list: `<name>_0`, `<name>_1`…"""
    return [bindparam(f"{name}_{i}") for i in range(count)]


def _conditions(shape: _Shape) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if shape.urged is not None:
        conditions.append(URGED if shape.urged else ~URGED)
    if shape.statuses:
        conditions.append(Ticket.status.in_(_bound("status", shape.statuses)))
    if shape.levels:
        conditions.append(Ticket.level.in_(_bound("level", shape.levels)))
    if shape.area_level is not None:
        conditions.append(AREA_COLUMNS[Level(shape.area_level)] == bindparam("area"))
    if shape.category:
        conditions.append(Ticket.category_code == bindparam("category"))
    if shape.department:
        conditions.append(Ticket.department_code == bindparam("department"))
    if shape.overdue is not None:
        conditions.append(deadlines.overdue_clause(shape.overdue, _NOW))
    if shape.warning is not None:
        conditions.append(deadlines.warning_clause(shape.warning, _NOW))
    if shape.reported_from:
        conditions.append(Ticket.reported_at >= bindparam("reported_from"))
    if shape.reported_to:
        conditions.append(Ticket.reported_at < bindparam("reported_to"))
    return conditions


@lru_cache(maxsize=1024)
def _statement(shape: _Shape) -> DirectStatement | None:
    """The list's statement, or None when the caller has no to-do list."""
    caller = bound_caller(shape.role, shape.level)
    conditions = _conditions(shape)
    if shape.awaiting:
        parts = awaiting(caller)
        conditions.append(visible_clause(caller))
    else:
        parts = visible_parts(caller)
    if not parts:
        return None
    queries = [TICKET_ROW.where(*conditions, part) for part in parts]
    statement = newest_first_of(queries, Ticket.reported_at, Ticket.id, after=shape.after)
    return DirectStatement(statement, reads=True)


async def newest_page(
    session: AsyncSession, user: User, filters: Filters, page: PageParams, now: datetime
) -> Page[dict[str, Any]]:
    """A page of the tickets in `user`'s scope that `filters` ask for, newest first by reporting
    time, as rows of `TICKET_ROW`."""
    statement = _statement(_shape(user, filters, after=page.cursor is not None))
    if statement is None:
        return Page(items=[], next_cursor=None)
    params = filters.params(now) | caller_params(user) | page.newest_params()
    rows = await statement.rows(session, params)
    return page.page_of_newest(rows, "reported_at", "id", dict)
