from tests.helpers import Api


async def test_admin_declares_days_and_everyone_reads_them(api: Api) -> None:
    body = {"working": False, "note": "区级调休"}
    assert (
        await api.client.put(
            "/api/v1/calendar/days/2026-11-24", json=body, headers=await api.headers("dispatcher")
        )
    ).status_code == 403

    stored = await api.client.put(
        "/api/v1/calendar/days/2026-11-24", json=body, headers=await api.headers("admin")
    )
    await api.client.put(
        "/api/v1/calendar/days/2027-01-01",
        json={"working": False},
        headers=await api.headers("admin"),
    )

    assert stored.status_code == 200 and stored.json()["working"] is False
    listed = (await api.get("/api/v1/calendar/days?limit=1", "worker")).json()
    assert [d["day"] for d in listed["items"]] == ["2026-11-24"]
    rest = await api.get(f"/api/v1/calendar/days?cursor={listed['next_cursor']}", "worker")
    assert [d["day"] for d in rest.json()["items"]] == ["2027-01-01"]
    ranged = (await api.get("/api/v1/calendar/days?from=2027-01-01", "worker")).json()
    assert [d["day"] for d in ranged["items"]] == ["2027-01-01"]

    effective = {
        day: (await api.get(f"/api/v1/calendar/days/{day}", "worker")).json()
        for day in ("2026-11-24", "2025-09-28", "2025-10-01", "2027-01-04", "2027-01-01")
    }
    assert effective["2026-11-24"] == {"day": "2026-11-24", "working": False, "source": "table"}
    assert (effective["2025-09-28"]["working"], effective["2025-09-28"]["source"]) == (
        True,
        "official",
    )  # an adjusted workday (a Sunday)
    assert effective["2025-10-01"]["working"] is False
    assert effective["2027-01-04"]["source"] == "weekends"
    assert effective["2027-01-01"]["source"] == "table"


async def test_removing_a_day_returns_it_to_the_official_calendar(api: Api) -> None:
    admin = await api.headers("admin")
    await api.client.put("/api/v1/calendar/days/2025-10-01", json={"working": True}, headers=admin)
    assert (await api.get("/api/v1/calendar/days/2025-10-01", "worker")).json()["working"]

    removed = await api.client.delete("/api/v1/calendar/days/2025-10-01", headers=admin)
    again = await api.client.delete("/api/v1/calendar/days/2025-10-01", headers=admin)

    assert (removed.status_code, again.status_code) == (204, 404)
    day = (await api.get("/api/v1/calendar/days/2025-10-01", "worker")).json()
    assert (day["working"], day["source"]) == (False, "official")


async def test_bad_calendar_input_is_422(api: Api) -> None:
    admin = await api.headers("admin")
    for path, body in (
        ("/api/v1/calendar/days/2026-02-30", {"working": True}),
        ("/api/v1/calendar/days/2026-11-24", {"working": "maybe"}),
        ("/api/v1/calendar/days/2026-11-24", {}),
    ):
        assert (await api.client.put(path, json=body, headers=admin)).status_code == 422
