"""The ticket state machine as data: (status, action) -> (next status, roles allowed)."""

import functools
from dataclasses import dataclass
from enum import StrEnum

from app.auth.models import Role


class Status(StrEnum):
    reported = "reported"
    dispatched = "dispatched"
    in_progress = "in_progress"
    suspended = "suspended"
    feedback = "feedback"
    closed = "closed"
    rated = "rated"
    rejected = "rejected"
    merged = "merged"


class Action(StrEnum):
    dispatch = "dispatch"
    reject = "reject"
    merge = "merge"
    claim = "claim"
    return_ = "return"
    suspend = "suspend"
    resume = "resume"
    request_extension = "request_extension"
    approve_extension = "approve_extension"
    deny_extension = "deny_extension"
    feedback = "feedback"
    verify = "verify"
    rate = "rate"
    escalate = "escalate"


OPEN_STATUSES = frozenset(
    {Status.reported, Status.dispatched, Status.in_progress, Status.suspended, Status.feedback}
)
# Statuses in which a deadline runs: the dispatch limit in `reported`, the handling limit after.
DEADLINE_RUNNING = frozenset({Status.reported, Status.dispatched, Status.in_progress})
CLOSED_STATUSES = frozenset({Status.closed, Status.rated})


@dataclass(frozen=True)
class Rule:
    to: Status | None  # None keeps the status
    roles: frozenset[Role]
    otherwise: Status | None = None  # the other outcome of a two-way action (verify failed)

    def targets(self, current: Status) -> set[Status]:
        return {s for s in (self.to or current, self.otherwise) if s is not None}


DISPATCH_CENTRE = frozenset({Role.dispatcher, Role.admin})
HANDLERS = frozenset({Role.handler, Role.admin})
VERIFIERS = frozenset({Role.grid_worker, Role.dispatcher, Role.admin})
RATERS = frozenset({Role.grid_worker, Role.admin})

TRANSITIONS: dict[tuple[Status, Action], Rule] = {
    **{
        (s, Action.dispatch): Rule(Status.dispatched, DISPATCH_CENTRE)
        for s in (Status.reported, Status.dispatched, Status.in_progress)
    },
    (Status.reported, Action.reject): Rule(Status.rejected, DISPATCH_CENTRE),
    (Status.reported, Action.merge): Rule(Status.merged, DISPATCH_CENTRE),
    (Status.dispatched, Action.claim): Rule(Status.in_progress, HANDLERS),
    (Status.dispatched, Action.return_): Rule(Status.reported, HANDLERS),
    (Status.in_progress, Action.return_): Rule(Status.reported, HANDLERS),
    (Status.in_progress, Action.suspend): Rule(Status.suspended, HANDLERS),
    (Status.suspended, Action.resume): Rule(Status.in_progress, HANDLERS),
    (Status.in_progress, Action.request_extension): Rule(None, HANDLERS),
    (Status.in_progress, Action.approve_extension): Rule(None, DISPATCH_CENTRE),
    (Status.in_progress, Action.deny_extension): Rule(None, DISPATCH_CENTRE),
    (Status.in_progress, Action.feedback): Rule(Status.feedback, HANDLERS),
    (Status.feedback, Action.verify): Rule(Status.closed, VERIFIERS, otherwise=Status.in_progress),
    (Status.closed, Action.rate): Rule(Status.rated, RATERS),
    **{(s, Action.escalate): Rule(None, DISPATCH_CENTRE) for s in OPEN_STATUSES},
}

ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    role: frozenset(a for (_, a), rule in TRANSITIONS.items() if role in rule.roles)
    for role in Role
}


@functools.cache
def available_actions(status: str, role: str) -> tuple[Action, ...]:
    """Actions the role may take on a ticket in `status`, in the table's order."""
    return tuple(a for (s, a), rule in TRANSITIONS.items() if s == status and role in rule.roles)
