"""Tickets near a point: duplicate reports (工单重复录入), the map around a ticket, and what a
grid worker sees around them before reporting."""

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, Float, Row, Select, bindparam, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.direct import DirectStatement
from app.orgs.geo import METRES_PER_DEGREE
from app.tickets.models import IS_CLOSED, IS_OPEN, Ticket

DUPLICATE_WINDOW = timedelta(hours=72)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * METRES_PER_DEGREE * math.degrees(math.asin(min(1.0, math.sqrt(a))))


# id, status, category, reporting time, lat, lon: what callers of `open_tickets_near` read.
NearTicket = Row[int, str, str, datetime, float, float]


class _Positioned(Protocol):
    lat: float
    lon: float


P = TypeVar("P", bound=_Positioned)


def _closest(
    tickets: Iterable[P], lat: float, lon: float, radius_m: float, limit: int
) -> list[tuple[P, float]]:
    measured = ((t, distance_m(lat, lon, t.lat, t.lon)) for t in tickets)
    return sorted(((t, d) for t, d in measured if d <= radius_m), key=lambda p: p[1])[:limit]


_NEAR_COLUMNS = (
    Ticket.id,
    Ticket.status,
    Ticket.category_code,
    Ticket.reported_at,
    Ticket.lat,
    Ticket.lon,
)


def _near(*conditions: ColumnElement[bool], columns: Iterable[Any] = _NEAR_COLUMNS) -> Select[Any]:
    """Tickets matching `conditions` in the box `lat`, `lon` ± `dlat`, `dlon`, ordered by
    planar distance (`squeeze`: the squared cosine of the latitude), `candidates` of them."""
    lat, lon = bindparam("lat", type_=Float), bindparam("lon", type_=Float)
    dlat, dlon = bindparam("dlat", type_=Float), bindparam("dlon", type_=Float)
    planar = (Ticket.lat - lat) * (Ticket.lat - lat) + (Ticket.lon - lon) * (
        Ticket.lon - lon
    ) * bindparam("squeeze", type_=Float)
    return (
        select(*columns)
        .where(
            Ticket.lat.between(lat - dlat, lat + dlat),
            Ticket.lon.between(lon - dlon, lon + dlon),
            *conditions,
        )
        .order_by(planar, Ticket.id)
        .limit(bindparam("candidates"))
    )


# Built once: building the statement cost more than running it.
_DUPLICATES = DirectStatement(
    _near(
        IS_OPEN,
        Ticket.category_code == bindparam("category"),
        Ticket.reported_at >= bindparam("since"),
    ),
    reads=True,
)


def _box(lat: float, lon: float, radius_m: float, limit: int) -> dict[str, float]:
    """The parameters of `_near` for a circle. The database orders the box by planar distance,
    which at these scales ranks as the great circle does; a margin of candidates covers the
    difference, and `_closest`'s great-circle distance decides."""
    squeeze = math.cos(math.radians(lat)) ** 2
    dlat = radius_m / METRES_PER_DEGREE
    dlon = radius_m / (METRES_PER_DEGREE * max(math.sqrt(squeeze), 1e-6))
    return {
        "lat": lat,
        "lon": lon,
        "dlat": dlat,
        "dlon": dlon,
        "squeeze": squeeze,
        "candidates": limit * 4,
    }


async def open_tickets_near(
    session: AsyncSession,
    lat: float,
    lon: float,
    radius_m: float,
    *conditions: ColumnElement[bool],
    limit: int = 50,
) -> list[tuple[NearTicket, float]]:
    """Open tickets within `radius_m` of the point, nearest first, with their distance: their
    id, status, category, reporting time and position."""
    rows = await session.execute(_near(IS_OPEN, *conditions), _box(lat, lon, radius_m, limit))
    return _closest(rows, lat, lon, radius_m, limit)


RECENTLY_CLOSED = timedelta(days=7)
_AROUND_COLUMNS = (*_NEAR_COLUMNS, Ticket.description)


async def tickets_around(
    session: AsyncSession,
    lat: float,
    lon: float,
    radius_m: float,
    now: datetime,
    *conditions: ColumnElement[bool],
    limit: int = 20,
) -> list[tuple[Any, float]]:
    """Open tickets and tickets closed in the last 7 days within `radius_m`, nearest first,
    with their distance: one statement, each part read through its own index."""
    closed_lately = (IS_CLOSED, Ticket.closed_at >= now - RECENTLY_CLOSED)
    parts = [
        select(_near(*where, *conditions, columns=_AROUND_COLUMNS).subquery())
        for where in ((IS_OPEN,), closed_lately)
    ]
    rows = await session.execute(union_all(*parts), _box(lat, lon, radius_m, limit))
    return _closest(rows, lat, lon, radius_m, limit)


async def possible_duplicates(
    session: AsyncSession, ticket: Ticket, radius_m: int, now: datetime, numbers: Any
) -> list[dict[str, Any]]:
    """Open tickets of the same category reported within the last 72 hours near `ticket`."""
    limit = 10
    box = _box(ticket.lat, ticket.lon, radius_m, limit)
    since = now - DUPLICATE_WINDOW
    rows = await _DUPLICATES.objects(
        session, box | {"category": ticket.category_code, "since": since}
    )
    near = _closest(rows, ticket.lat, ticket.lon, radius_m, limit)
    return [{"id": t.id, "number": numbers(t), "distance_m": round(d, 1)} for t, d in near]
