"""Every row of the transition table, allowed and refused by status, role and scope."""

from typing import Any

import pytest

from app.tickets.machine import TRANSITIONS, Action, Status
from tests.helpers import Api

ACTORS: dict[Action, tuple[str, dict[str, Any] | None]] = {
    Action.dispatch: ("dispatcher", {"department_code": "NH-SZ"}),
    Action.reject: ("dispatcher", {"note": "不属于受理范围"}),
    Action.merge: ("dispatcher", None),  # body filled in with a fresh original
    Action.claim: ("handler", None),
    Action.return_: ("handler", {"note": "非本部门职责"}),
    Action.suspend: ("handler", {"note": "等待配件"}),
    Action.resume: ("handler", None),
    Action.request_extension: ("handler", {"time_limit": {"value": 2, "unit": "hours"}}),
    Action.approve_extension: ("dispatcher", None),
    Action.deny_extension: ("dispatcher", None),
    Action.feedback: ("handler", {"note": "已处置"}),
    Action.verify: ("worker", {"passed": True}),
    Action.rate: ("worker", {"score": 4}),
    Action.escalate: ("dispatcher", {"note": "超出社区处置能力"}),
    Action.request_check: ("dispatcher", None),
    Action.confirm: ("worker", {"note": "现场属实"}),
    Action.refute: ("worker", {"note": "现场未发现该问题"}),
    Action.assist: ("sz_handler", {"note": "已配合疏通管道"}),
    Action.urge: ("supervisor", {"note": "群众反映强烈，请加快处置"}),
    Action.reopen: ("dispatcher", {"note": "回访不满意"}),
}
# Who else may take the action, besides its actor above.
ALSO_ALLOWED = {
    Action.verify: {"dispatcher", "worker"},
    Action.urge: {"dispatcher"},
    Action.reopen: {"worker"},
}
# The same role, but a unit, department or person the ticket does not belong to.
OUTSIDER = {
    "dispatcher": "dl_dispatcher",
    "handler": "sz_handler",
    "sz_handler": "xf_handler",
    "worker": "worker2",
    "supervisor": "dl_supervisor",
}
# A status (besides `rated`, where nothing is allowed) from which the action is illegal.
WRONG_STATUS = {
    Action.dispatch: Status.feedback,
    Action.reject: Status.dispatched,
    Action.merge: Status.in_progress,
    Action.claim: Status.in_progress,
    Action.return_: Status.feedback,
    Action.suspend: Status.dispatched,
    Action.resume: Status.in_progress,
    Action.request_extension: Status.dispatched,
    Action.approve_extension: Status.feedback,
    Action.deny_extension: Status.suspended,
    Action.feedback: Status.dispatched,
    Action.verify: Status.in_progress,
    Action.rate: Status.feedback,
    Action.escalate: Status.closed,
    Action.request_check: Status.dispatched,
    Action.confirm: Status.reported,
    Action.refute: Status.feedback,
    Action.assist: Status.feedback,
    Action.urge: Status.closed,
    Action.reopen: Status.feedback,
}
# Each action from `rated` (where only reopen is allowed) and from its other wrong status.
WRONG = [
    (action, status)
    for action in Action
    for status in dict.fromkeys((Status.rated, WRONG_STATUS[action]))
    if (status, action) not in TRANSITIONS
]


def first_status(action: Action) -> Status:
    return next(s for (s, a) in TRANSITIONS if a == action)


async def prepare(api: Api, status: Status, action: Action) -> tuple[int, dict[str, Any] | None]:
    ticket = await api.ticket_in(status, assisted=action == Action.assist)
    if action in (Action.approve_extension, Action.deny_extension) and status == Status.in_progress:
        await api.must(
            ticket["id"],
            "request_extension",
            "handler",
            {"time_limit": {"value": 1, "unit": "hours"}},
        )
    body = ACTORS[action][1]
    if action == Action.merge:
        body = {"duplicate_of": (await api.report())["id"], "note": "重复上报"}
    return ticket["id"], body


@pytest.mark.parametrize(
    ("status", "action"), list(TRANSITIONS), ids=[f"{s}-{a}" for s, a in TRANSITIONS]
)
async def test_allowed(api: Api, status: Status, action: Action) -> None:
    tid, body = await prepare(api, status, action)
    before = (await api.get(f"/api/v1/tickets/{tid}", "admin")).json()

    ticket = await api.must(tid, action, ACTORS[action][0], body)

    assert ticket["status"] in TRANSITIONS[(status, action)].targets(status)
    assert ticket["version"] == before["version"] + 1
    last = (await api.history(tid))[-1]
    assert (last["action"], last["from_status"], last["to_status"]) == (
        action,
        status,
        ticket["status"],
    )


@pytest.mark.parametrize("action", list(Action))
async def test_refused_for_a_role_that_may_not(api: Api, action: Action) -> None:
    tid, body = await prepare(api, first_status(action), action)
    before = await api.history(tid)

    allowed = {ACTORS[action][0], *ALSO_ALLOWED.get(action, ())}
    for username in ("supervisor", "worker", "handler", "dispatcher", "admin"):
        if username in allowed or (username == "admin" and action != Action.assist):
            continue
        response = await api.act(tid, action, username, body)
        visible = (await api.get(f"/api/v1/tickets/{tid}", username)).status_code == 200
        assert response.status_code == (403 if visible else 404), (username, response.text)
        assert response.headers["content-type"] == "application/problem+json"

    assert await api.history(tid) == before


@pytest.mark.parametrize("action", list(Action))
async def test_refused_outside_scope(api: Api, action: Action) -> None:
    tid, body = await prepare(api, first_status(action), action)
    before = await api.history(tid)

    response = await api.act(tid, action, OUTSIDER[ACTORS[action][0]], body)

    assert response.status_code == 404
    assert await api.history(tid) == before


@pytest.mark.parametrize(("action", "status"), WRONG, ids=[f"{s}-{a}" for a, s in WRONG])
async def test_refused_in_wrong_status(api: Api, action: Action, status: Status) -> None:
    tid, body = await prepare(api, status, action)
    before = await api.history(tid)
    username = ACTORS[action][0]

    response = await api.act(tid, action, username, body)

    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["type"] == "/problems/illegal-transition"
    assert problem["current_status"] == status
    ticket = (await api.get(f"/api/v1/tickets/{tid}", username)).json()
    assert problem["allowed_actions"] == ticket["allowed_actions"]
    assert await api.history(tid) == before


async def test_failed_verification_sends_back_for_rework(api: Api) -> None:
    ticket = await api.ticket_in("feedback")

    reworked = await api.must(
        ticket["id"], "verify", "dispatcher", {"passed": False, "note": "垃圾未清完"}
    )

    assert reworked["status"] == "in_progress"
    assert reworked["rework_count"] == 1
    assert reworked["closed_at"] is None
    assert reworked["warning"] == "green"


async def test_dispatcher_sees_but_cannot_act_on_a_ticket_escalated_above_them(api: Api) -> None:
    ticket = await api.ticket_in("reported")
    await api.must(ticket["id"], "escalate", "dispatcher", {"note": "需街道协调"})

    seen = await api.get(f"/api/v1/tickets/{ticket['id']}", "dispatcher")
    refused = await api.act(ticket["id"], "dispatch", "dispatcher", {"department_code": "NH-CG"})
    by_town = await api.act(
        ticket["id"], "dispatch", "town_dispatcher", {"department_code": "NH-CG"}
    )

    assert seen.status_code == 200
    assert refused.status_code == 403
    assert by_town.status_code == 200


async def test_unknown_action_is_404(api: Api) -> None:
    ticket = await api.ticket_in("reported")
    response = await api.act(ticket["id"], "close", "dispatcher")
    assert response.status_code == 404
    assert "dispatch" in response.json()["detail"]


async def test_dispatch_only_to_departments_covering_the_grid(api: Api) -> None:
    ticket = await api.ticket_in("reported")  # grid GC01-1 in town GC
    other_town = await api.act(ticket["id"], "dispatch", "dispatcher", {"department_code": "DL-ZZ"})
    own_town = await api.act(ticket["id"], "dispatch", "dispatcher", {"department_code": "GC-ZZ"})
    assert other_town.status_code == 422
    assert own_town.status_code == 200


async def test_a_redispatch_that_changes_nothing_is_refused(api: Api) -> None:
    """A double click on dispatch must not restart the clock."""
    ticket = await api.ticket_in("dispatched")  # to NH-CG
    again = await api.act(ticket["id"], "dispatch", "dispatcher", {"department_code": "NH-CG"})
    assert again.status_code == 409 and "already dispatched" in again.json()["detail"]
    assert (await api.act(ticket["id"], "dispatch", "dispatcher")).status_code == 409  # default
    longer = {"department_code": "NH-CG", "time_limit": {"value": 8, "unit": "hours"}}
    assert (await api.act(ticket["id"], "dispatch", "dispatcher", longer)).status_code == 200
    assert len(await api.history(ticket["id"])) == 3


async def test_a_reporter_does_not_rate_what_they_resolved_on_the_spot(api: Api) -> None:
    ticket = await api.report(resolved_on_site=True)
    refused = await api.act(ticket["id"], "rate", "worker", {"score": 5})
    assert refused.status_code == 409
    assert (
        "rate"
        not in (await api.get(f"/api/v1/tickets/{ticket['id']}", "worker")).json()[
            "allowed_actions"
        ]
    )
    assert (await api.act(ticket["id"], "rate", "admin", {"score": 4})).status_code == 200
