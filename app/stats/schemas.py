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
    name: str | None = Field(
        default=None, description="the org unit's or the department's name (null: no department)"
    )
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


class Subject(StrEnum):
    grid_workers = "grid_workers"
    departments = "departments"


class ExplainTerm(BaseModel):
    """One term of a score: score = Σ points, points = 100 × weight × value / Σ weight."""

    term: str = Field(description="the weight's name (API.md)")
    rate: float | None = Field(description="the rate as reported in the item (null: no data)")
    part: int = Field(description="the rate's numerator")
    whole: int = Field(description="the rate's denominator")
    value: float = Field(
        description="what entered the score: the rate, 1 - rate for missed_rate and rework_rate; "
        "with no denominator 1 (0 for missed_rate, so 1 - 0)"
    )
    weight: float
    points: float = Field(description="100 × weight × value / (sum of the weights)")


class WorkerAppraisalRow(BaseModel):
    rank: int | None = Field(description="1 is best; equal scores share a rank; null: no score")
    username: str
    display_name: str
    grid_code: str
    reports: int = Field(description="tickets they reported")
    valid_reports: int = Field(description="of those, not rejected or merged")
    valid_rate: float | None
    public_first: int = Field(
        description="Open311 tickets of their grid not rejected, refuted or merged (漏报)"
    )
    missed_rate: float | None = Field(description="public_first / (valid_reports + public_first)")
    checks: int = Field(description="confirm or refute by them (核实)")
    checks_on_time: int = Field(description="answered before the check deadline")
    on_time_check_rate: float | None
    verifications: int = Field(description="verify by them, passed or failed (核查)")
    verifications_on_time: int = Field(description="within GRIDWORK_VERIFY_LIMIT of the feedback")
    on_time_verification_rate: float | None
    patrol_days: int = Field(description="local days with a clock-in inside their own grid")
    score: float | None = Field(description="null when no report, check or verification")
    explain: list[ExplainTerm] = Field(description="how the score was made (empty: no score)")


class DepartmentAppraisalRow(BaseModel):
    rank: int | None = Field(description="1 is best; equal scores share a rank; null: no score")
    department_code: str
    name: str
    handled: int = Field(description="accepted tickets it leads now")
    closed: int
    closure_rate: float | None
    closed_on_time: int = Field(description="closed and never overdue")
    on_time_rate: float | None
    reworked: int
    rework_rate: float | None
    reopened: int
    returned: int = Field(description="tickets it returned at least once (退单)")
    assists: int = Field(description="assisting parts asked of it (协办)")
    assists_done: int
    rated: int
    satisfied: int = Field(description="latest rating 4 or 5")
    satisfaction_rate: float | None
    score: float | None = Field(description="null when handled is 0")
    explain: list[ExplainTerm] = Field(description="how the score was made (empty: no score)")


class WorkerAppraisal(BaseModel):
    subject: Subject = Subject.grid_workers
    items: list[WorkerAppraisalRow]
    weights: dict[str, float] = Field(
        description="valid_rate, missed_rate, on_time_check_rate, on_time_verification_rate"
    )


class DepartmentAppraisal(BaseModel):
    subject: Subject = Subject.departments
    items: list[DepartmentAppraisalRow]
    weights: dict[str, float] = Field(
        description="closure_rate, on_time_rate, rework_rate, satisfaction_rate"
    )
