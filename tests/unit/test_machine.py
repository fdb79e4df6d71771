from app.auth.models import Role
from app.tickets.machine import (
    CLOSED_STATUSES,
    DEADLINE_RUNNING,
    OPEN_STATUSES,
    ROLE_ACTIONS,
    TRANSITIONS,
    Action,
    Status,
    available_actions,
)
from app.tickets.schemas import ACTION_BODIES
from app.tickets.service import EFFECTS


def test_every_action_has_a_body_an_effect_and_a_rule() -> None:
    assert set(ACTION_BODIES) == set(EFFECTS) == set(Action)
    assert {a for (_, a) in TRANSITIONS} == set(Action)


def test_dead_ends_have_no_way_out() -> None:
    for status in (Status.rejected, Status.merged):
        assert not [a for (s, a) in TRANSITIONS if s == status]


def test_a_rated_ticket_may_only_be_reopened() -> None:
    assert [a for (s, a) in TRANSITIONS if s == Status.rated] == [Action.reopen]
    rule = TRANSITIONS[(Status.rated, Action.reopen)]
    assert rule.targets(Status.rated) == {Status.dispatched, Status.reported}


def test_escalate_and_urge_from_every_open_status_and_nowhere_else() -> None:
    assert {s for (s, a) in TRANSITIONS if a == Action.escalate} == OPEN_STATUSES
    assert {s for (s, a) in TRANSITIONS if a == Action.urge} == OPEN_STATUSES
    assert Status.checking in OPEN_STATUSES and Status.checking in DEADLINE_RUNNING


def test_statuses_partition() -> None:
    assert DEADLINE_RUNNING < OPEN_STATUSES
    assert not OPEN_STATUSES & CLOSED_STATUSES


def test_roles_match_the_contract() -> None:
    assert ROLE_ACTIONS[Role.supervisor] == {Action.urge}
    assert ROLE_ACTIONS[Role.grid_worker] == {
        Action.verify,
        Action.rate,
        Action.confirm,
        Action.refute,
        Action.reopen,
    }
    assert ROLE_ACTIONS[Role.handler] == {
        Action.claim,
        Action.return_,
        Action.suspend,
        Action.resume,
        Action.request_extension,
        Action.feedback,
        Action.assist,
    }
    assert ROLE_ACTIONS[Role.dispatcher] == {
        Action.dispatch,
        Action.reject,
        Action.merge,
        Action.escalate,
        Action.approve_extension,
        Action.deny_extension,
        Action.verify,
        Action.request_check,
        Action.urge,
        Action.reopen,
    }
    # assisting is the assisting department's alone, an admin's included
    assert ROLE_ACTIONS[Role.admin] == set(Action) - {Action.assist}


def test_verify_has_two_outcomes() -> None:
    rule = TRANSITIONS[(Status.feedback, Action.verify)]
    assert rule.targets(Status.feedback) == {Status.closed, Status.in_progress}


def test_available_actions() -> None:
    assert available_actions(Status.reported, Role.dispatcher) == (
        Action.dispatch,
        Action.reject,
        Action.merge,
        Action.request_check,
        Action.escalate,
        Action.urge,
    )
    assert available_actions(Status.checking, Role.grid_worker) == (
        Action.confirm,
        Action.refute,
    )
    assert available_actions(Status.in_progress, Role.handler) == (
        Action.return_,
        Action.suspend,
        Action.request_extension,
        Action.feedback,
        Action.assist,
    )
    assert available_actions(Status.closed, Role.grid_worker) == (Action.rate, Action.reopen)


def test_an_action_needs_the_same_roles_from_every_status() -> None:
    """So the role check (403) needs only the action, and the status check (409) only the
    status."""
    for action in Action:
        roles = {rule.roles for (_, a), rule in TRANSITIONS.items() if a == action}
        assert len(roles) == 1, action
