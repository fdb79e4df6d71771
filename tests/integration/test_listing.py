from datetime import timedelta

from app.clock import FrozenClock
from tests.helpers import IN_DL01_1, IN_GC02_1, Api


async def ids(api: Api, user: str, query: str = "") -> list[int]:
    response = await api.get(f"/api/v1/tickets?{query}", user)
    assert response.status_code == 200, response.text
    return [t["id"] for t in response.json()["items"]]


async def test_scope_of_each_role(api: Api) -> None:
    gc01 = await api.report()
    gc02 = await api.report(at=IN_GC02_1)
    dl01 = await api.report(as_="worker2", at=IN_DL01_1)
    await api.must(gc01["id"], "dispatch", "dispatcher", {"department_code": "NH-CG"})

    assert await ids(api, "admin") == [dl01["id"], gc02["id"], gc01["id"]]
    assert await ids(api, "supervisor") == [dl01["id"], gc02["id"], gc01["id"]]
    assert await ids(api, "gc_supervisor") == [gc02["id"], gc01["id"]]
    assert await ids(api, "town_dispatcher") == [gc02["id"], gc01["id"]]
    assert await ids(api, "dispatcher") == [gc01["id"]]
    assert await ids(api, "dl_dispatcher") == [dl01["id"]]
    assert await ids(api, "worker") == [gc02["id"], gc01["id"]]
    assert await ids(api, "worker2") == [dl01["id"]]
    assert await ids(api, "handler") == [gc01["id"]]
    assert await ids(api, "sz_handler") == []
    for user in ("dl_dispatcher", "sz_handler", "worker2"):
        assert (await api.get(f"/api/v1/tickets/{gc01['id']}", user)).status_code == 404
        assert (await api.get(f"/api/v1/tickets/{gc01['id']}/history", user)).status_code == 404


async def test_a_grid_worker_lists_each_ticket_in_sight_once(api: Api) -> None:
    """Their reports; and others' tickets they see: the originals theirs were merged into and
    their grid's tickets to check, however those overlap."""
    theirs_checked = (await api.report(as_="worker2"))["id"]  # in the worker's grid GC01-1
    original = (await api.report(as_="worker2"))["id"]
    elsewhere = (await api.report(as_="worker2", at=IN_DL01_1))["id"]
    mine_checked = (await api.report())["id"]
    merged = (await api.report())["id"]
    for ticket in (theirs_checked, mine_checked):
        await api.must(ticket, "request_check", "dispatcher")
    note = {"duplicate_of": original, "note": "同一处垃圾"}
    await api.must(merged, "merge", "dispatcher", note)

    assert await ids(api, "worker") == [merged, mine_checked, original, theirs_checked]
    assert await ids(api, "worker", "limit=1") == [merged]
    assert elsewhere in await ids(api, "worker2")


async def test_filters(api: Api, clock: FrozenClock) -> None:
    old = await api.report(category_code="manhole")
    clock.advance(timedelta(days=1))
    dispatched = await api.ticket_in("dispatched")
    escalated = await api.ticket_in("reported", at=IN_GC02_1)
    await api.must(escalated["id"], "escalate", "town_dispatcher", {"note": "需街道协调"})

    assert await ids(api, "admin", "status=dispatched") == [dispatched["id"]]
    assert await ids(api, "admin", "status=dispatched&status=reported") == [
        escalated["id"],
        dispatched["id"],
        old["id"],
    ]
    repeated = "status=reported&status=dispatched&status=reported&level=town&level=town"
    assert await ids(api, "admin", repeated) == [escalated["id"]]
    assert await ids(api, "admin", "level=town") == [escalated["id"]]
    assert await ids(api, "admin", "org_unit=GC02") == [escalated["id"]]
    assert await ids(api, "admin", "category=manhole") == [old["id"]]
    assert await ids(api, "admin", "department=NH-CG") == [dispatched["id"]]
    assert await ids(api, "admin", "reported_to=2026-11-24") == [old["id"]]
    assert await ids(api, "admin", "reported_from=2026-11-24") == [
        escalated["id"],
        dispatched["id"],
    ]
    assert await ids(api, "admin", "reported_from=2026-11-24T02:00:00%2B00:00") == [
        escalated["id"],
        dispatched["id"],
    ]


async def test_warning_and_overdue_filters(api: Api, clock: FrozenClock) -> None:
    ticket = await api.ticket_in("dispatched")  # garbage: 4 hours
    fresh = await api.report()  # dispatch limit: 60 minutes

    assert await ids(api, "admin", "warning=green") == [fresh["id"], ticket["id"]]
    clock.advance(timedelta(minutes=50))
    assert await ids(api, "admin", "warning=yellow") == [fresh["id"]]
    clock.advance(timedelta(minutes=10))
    assert await ids(api, "admin", "warning=red") == [fresh["id"]]
    assert await ids(api, "admin", "overdue=true") == [fresh["id"]]
    assert await ids(api, "admin", "overdue=false") == [ticket["id"]]
    clock.advance(timedelta(hours=2, minutes=15))  # 3h15 of 4h used
    assert await ids(api, "admin", "warning=yellow") == [ticket["id"]]
    detail = (await api.get(f"/api/v1/tickets/{ticket['id']}", "admin")).json()
    assert (detail["warning"], detail["overdue"]) == ("yellow", False)


async def test_keyset_pages(api: Api) -> None:
    created = [(await api.report())["id"] for _ in range(7)]
    seen: list[int] = []
    cursor = None
    while True:
        query = "limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await api.get(f"/api/v1/tickets?{query}", "worker")).json()
        seen += [t["id"] for t in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == sorted(created, reverse=True)
