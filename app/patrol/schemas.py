from datetime import date, datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from app.fields import Timestamp
from app.tickets.schemas import Latitude, Longitude


class ClockInIn(BaseModel):
    client_id: UUID = Field(description="chosen by the phone; a resend returns the first record")
    lat: Latitude
    lon: Longitude
    at: Timestamp | None = Field(
        default=None,
        description="when the worker clocked in (phones queue offline); now when left out. "
        "At most 5 minutes ahead and 7 days back.",
    )


class ClockInOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    client_id: UUID
    worker: str
    grid_code: str | None = Field(description="the grid the point is in; null outside every grid")
    inside_grid: bool = Field(description="the point is in the worker's own grid")
    lat: float
    lon: float
    at: datetime


class GridPatrol(BaseModel):
    grid_code: str
    clock_ins: int = Field(description="clock-ins inside the grid by its own workers")
    workers: int = Field(description="distinct workers among them")
    patrolled: bool
    track_minutes: float = Field(
        description="minutes of the grid's workers' tracks inside the grid (see patrol/tracks)"
    )


class PatrolTotals(BaseModel):
    grids: int
    patrolled: int
    clock_ins: int
    coverage_rate: float | None = Field(description="grids patrolled / grids; null with no grids")


class PatrolStats(BaseModel):
    items: list[GridPatrol]
    totals: PatrolTotals


class TrackPointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: Timestamp = Field(description="within the last 7 days, not in the future")
    lat: Latitude
    lon: Longitude
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000, allow_inf_nan=False)


class TrackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    points: list[TrackPointIn] = Field(min_length=1, max_length=1000)


class TrackStored(BaseModel):
    stored: int = Field(description="points new to the server")
    ignored: int = Field(description="points it had already (the same worker and instant)")


class LineString(BaseModel):
    type: Literal["LineString"] = "LineString"
    coordinates: list[tuple[float, float]] = Field(description="[lon, lat] in time order")


class TrackProperties(BaseModel):
    worker: str
    date: date
    points: int
    distance_m: float = Field(description="the length of the track")
    minutes_in_grid: float = Field(
        description="time between consecutive points both inside the worker's grid, gaps over "
        "10 minutes not counted"
    )


class TrackOut(BaseModel):
    """A GeoJSON Feature: the worker's track of one local day."""

    type: Literal["Feature"] = "Feature"
    geometry: LineString | None = Field(description="null with fewer than two points")
    properties: TrackProperties
