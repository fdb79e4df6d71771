"""The ticket state machine as data: (status, action) -> (next status, roles allowed)."""

import functools
from dataclasses import dataclass
from enum import StrEnum

from app.auth.models import Role


class Status(StrEnum):
    reported = "reported"
    checking = "checking"
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
    request_check = "request_check"
    confirm = "confirm"
    refute = "refute"
    assist = "assist"
    urge = "urge"
    reopen = "reopen"


OPEN_STATUSES = frozenset(
    {
        Status.reported,
        Status.checking,
        Status.dispatched,
        Status.in_progress,
        Status.suspended,
        Status.feedback,
    }
)
# Statuses in which a deadline runs: the dispatch limit in `reported`, the check limit in
# `checking`, the handling limit after dispatch.
DEADLINE_RUNNING = frozenset(
    {Status.reported, Status.checking, Status.dispatched, Status.in_progress}
)
# Where an assisting department may answer its part (协办), and a handler's work waits.
HANDLING_STATUSES = (Status.dispatched, Status.in_progress, Status.suspended)
# What the workers of a ticket's grid check on site: a report (核实), a fix (核查).
GRID_CHECKS = (Status.checking, Status.feedback)
CLOSED_STATUSES = frozenset({Status.closed, Status.rated})
# Tickets that need no handling and so are not counted as accepted (应结案数 leaves them out).
NOT_ACCEPTED = frozenset({Status.rejected, Status.merged})


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
CHECKERS = frozenset({Role.grid_worker, Role.admin})
ASSISTERS = frozenset({Role.handler})  # the assisting department's own staff alone
URGERS = frozenset({Role.supervisor, Role.dispatcher, Role.admin})
REOPENERS = frozenset({Role.dispatcher, Role.grid_worker, Role.admin})

TRANSITIONS: dict[tuple[Status, Action], Rule] = {
    **{
        (s, Action.dispatch): Rule(Status.dispatched, DISPATCH_CENTRE)
        for s in (Status.reported, Status.checking, Status.dispatched, Status.in_progress)
    },
    **{
        (s, Action.reject): Rule(Status.rejected, DISPATCH_CENTRE)
        for s in (Status.reported, Status.checking)
    },
    **{
        (s, Action.merge): Rule(Status.merged, DISPATCH_CENTRE)
        for s in (Status.reported, Status.checking)
    },
    (Status.reported, Action.request_check): Rule(Status.checking, DISPATCH_CENTRE),
    (Status.checking, Action.confirm): Rule(Status.reported, CHECKERS),
    (Status.checking, Action.refute): Rule(Status.rejected, CHECKERS),
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
    **{(s, Action.assist): Rule(None, ASSISTERS) for s in HANDLING_STATUSES},
    **{(s, Action.escalate): Rule(None, DISPATCH_CENTRE) for s in sorted(OPEN_STATUSES)},
    **{(s, Action.urge): Rule(None, URGERS) for s in sorted(OPEN_STATUSES)},
    **{
        (s, Action.reopen): Rule(Status.dispatched, REOPENERS, otherwise=Status.reported)
        for s in (Status.closed, Status.rated)
    },
}

ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    role: frozenset(a for (_, a), rule in TRANSITIONS.items() if role in rule.roles)
    for role in Role
}


@functools.cache
def available_actions(status: str, role: str) -> tuple[Action, ...]:
    """Actions the role may take on a ticket in `status`, in the table's order."""
    return tuple(a for (s, a), rule in TRANSITIONS.items() if s == status and role in rule.roles)
