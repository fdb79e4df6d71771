from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.fields import Comment, Description, Note, Timestamp
from app.orgs.schemas import Code
from app.tickets.deadlines import WarningLevel
from app.tickets.machine import Action, Status
from app.timing.limits import TimeLimit

Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, description="WGS84 degrees")]
Longitude = Annotated[
    float, Field(ge=-180, le=180, allow_inf_nan=False, description="WGS84 degrees")
]
MAX_ID = 2**63 - 1
MAX_ASSISTS = 5
TicketId = Annotated[int, Field(ge=1, le=MAX_ID)]
AttachmentIds = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=64)]],
    Field(max_length=20, description="ids of uploaded attachments"),
]


class EventIn(BaseModel):
    client_id: UUID = Field(description="chosen by the phone; a resend returns the same ticket")
    category_code: Code
    description: Description
    lat: Latitude
    lon: Longitude
    occurred_at: Timestamp | None = None
    urgent: bool = False
    resolved_on_site: bool = Field(
        default=False, description="solved on the spot (自行处置): filed straight as closed"
    )
    attachment_ids: AttachmentIds = []
    location_source: Literal["gps", "map"] | None = Field(
        default=None, description="how the point was set: the phone's GPS fix, or a pin moved"
    )
    accuracy_m: float | None = Field(
        default=None, ge=0, le=100_000, allow_inf_nan=False, description="the GPS fix's accuracy"
    )


class DuplicateHint(BaseModel):
    id: int
    number: str
    distance_m: float


class NearbyTicket(BaseModel):
    id: int
    number: str
    status: Status
    category_code: str
    reported_at: datetime
    distance_m: float


class AssistOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    department_code: str
    done_at: datetime | None = Field(description="null while the part is pending")
    note: str | None


class AroundTicket(NearbyTicket):
    """A ticket near the caller, whatever their scope: what a worker needs to recognise it."""

    description: str


class TicketOut(BaseModel):
    id: int
    number: str = Field(description="human-facing ticket number")
    status: Status
    level: str = Field(description="community, town or district: who owns the ticket now")
    owner_unit_code: str
    grid_code: str
    category_code: str
    description: str
    lat: float
    lon: float
    urgent: bool
    reporter: str | None
    department_code: str | None
    source: str
    self_resolved: bool
    occurred_at: datetime | None
    reported_at: datetime
    dispatched_at: datetime | None
    deadline_at: datetime | None
    feedback_at: datetime | None
    closed_at: datetime | None
    checked_at: datetime | None = Field(description="when the grid's worker answered a check")
    updated_at: datetime = Field(description="the latest change (moves with `version`)")
    time_limit: TimeLimit | None
    overdue: bool = Field(description="the ticket has missed a deadline at least once")
    warning: WarningLevel | None = Field(description="of the deadline now running")
    escalation_count: int
    rework_count: int
    extension_count: int
    urge_count: int = Field(description="times the ticket was urged (督办)")
    reopen_count: int = Field(description="times the ticket was reopened (重办)")
    assists: list[AssistOut] = Field(description="assisting departments' parts (协办)")
    pending_extension: TimeLimit | None
    rating: int | None
    rating_comment: str | None
    duplicate_of: int | None
    possible_duplicates: list[DuplicateHint]
    allowed_actions: list[Action] = Field(
        description="actions the caller's role may take in the ticket's current status"
    )
    version: int


class HistoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    actor: str
    action: str
    from_status: Status | None
    to_status: Status
    from_level: str | None
    to_level: str
    note: str | None
    details: dict[str, object] | None


# Bodies of POST /tickets/{id}/actions/{action}.


class ActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expected_version: int | None = Field(
        default=None, ge=1, description="the version the caller last saw: 409 when stale"
    )
    note: Note | None = None


class NoteRequired(ActionIn):
    note: Note


class DispatchIn(ActionIn):
    department_code: Code | None = Field(
        default=None, description="defaults to the category's default department"
    )
    time_limit: TimeLimit | None = Field(
        default=None, description="defaults to the category's (urgent) time limit"
    )
    assisting_department_codes: list[Code] | None = Field(
        default=None,
        max_length=MAX_ASSISTS,
        description=f"0-{MAX_ASSISTS} assisting departments (协办), not the lead; omitted: the "
        "list stays as it is; []: no assisting department",
    )

    @field_validator("assisting_department_codes")
    @classmethod
    def _distinct(cls, codes: list[str] | None) -> list[str] | None:
        if codes is not None and len(set(codes)) < len(codes):
            raise ValueError("each assisting department may be named once")
        return codes


class MergeIn(NoteRequired):
    duplicate_of: TicketId = Field(
        description="id of the ticket this one duplicates: live, of the same category, close by"
    )


class FeedbackIn(ActionIn):
    attachment_ids: AttachmentIds = []


class ExtensionIn(ActionIn):
    time_limit: TimeLimit = Field(description="how much more time")


class VerifyIn(ActionIn):
    passed: bool = Field(description="false sends the ticket back for rework (返工)")
    attachment_ids: AttachmentIds = Field(
        default=[], description="photos taken while checking the work on site"
    )


class ConfirmIn(ActionIn):
    attachment_ids: AttachmentIds = Field(default=[], description="photos taken on site")


class AssistIn(NoteRequired):
    attachment_ids: AttachmentIds = []


class RateIn(ActionIn):
    score: int = Field(ge=1, le=5)
    comment: Comment | None = None


ACTION_BODIES: dict[Action, type[ActionIn]] = {
    Action.dispatch: DispatchIn,
    Action.reject: NoteRequired,
    Action.merge: MergeIn,
    Action.claim: ActionIn,
    Action.return_: NoteRequired,
    Action.suspend: ActionIn,
    Action.resume: ActionIn,
    Action.request_extension: ExtensionIn,
    Action.approve_extension: ActionIn,
    Action.deny_extension: ActionIn,
    Action.feedback: FeedbackIn,
    Action.verify: VerifyIn,
    Action.rate: RateIn,
    Action.escalate: NoteRequired,
    Action.request_check: ActionIn,
    Action.confirm: ConfirmIn,
    Action.refute: NoteRequired,
    Action.assist: AssistIn,
    Action.urge: NoteRequired,
    Action.reopen: NoteRequired,
}
