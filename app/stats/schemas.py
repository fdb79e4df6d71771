from enum import StrEnum

from pydantic import BaseModel, Field


class GroupBy(StrEnum):
    org_unit = "org_unit"
    category = "category"
    department = "department"
    day = "day"
    week = "week"
    month = "month"


class ClosureRow(BaseModel):
    key: str | None = Field(description="the group (null: tickets with no department, totals)")
    reported: int
    accepted: int = Field(description="应结案数: reported - rejected - merged")
    closed: int = Field(description="closed or rated")
    closed_on_time: int = Field(description="closed and never overdue")
    closure_rate: float | None
    on_time_closure_rate: float | None
    self_resolved: int
    open: int
    overdue_open: int
    escalated: int
    reworked: int
    rework_rate: float | None
    reopened: int = Field(description="reopened at least once (重办)")
    reopen_rate: float | None
    resolved_in_community: int
    in_community_rate: float | None
    rated: int
    satisfied: int = Field(description="rated 4 or 5")
    satisfaction_rate: float | None
    avg_handling_hours: float | None = Field(description="mean of closed_at - reported_at")


class RankBy(StrEnum):
    org_unit = "org_unit"
    department = "department"


class RankingRow(BaseModel):
    rank: int | None = Field(description="1 is best; equal scores share a rank; null: no score")
    key: str | None
    score: float | None = Field(description="weighted closure, on-time and (1 - rework) rates")
    accepted: int
    closure_rate: float | None
    on_time_closure_rate: float | None
    rework_rate: float | None


class RankingWeights(BaseModel):
    closure_rate: float
    on_time_closure_rate: float
    no_rework: float


class Ranking(BaseModel):
    items: list[RankingRow]
    weights: RankingWeights


class ClosureStats(BaseModel):
    items: list[ClosureRow]
    totals: ClosureRow
