from datetime import datetime
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


class PatrolTotals(BaseModel):
    grids: int
    patrolled: int
    clock_ins: int
    coverage_rate: float | None = Field(description="grids patrolled / grids; null with no grids")


class PatrolStats(BaseModel):
    items: list[GridPatrol]
    totals: PatrolTotals
