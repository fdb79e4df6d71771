"""Merging a duplicate: only with a note, into a live ticket of the same category close by, and
never both ways at once."""

import asyncio

import pytest

from tests.helpers import IN_GC01_1, Api

NOTE = "同一处暴露垃圾"


def east(metres: float) -> tuple[float, float]:
    """A point `metres` east of IN_GC01_1 (about 102.3 km a degree of longitude there)."""
    return IN_GC01_1[0], round(IN_GC01_1[1] + metres / 102_300, 6)


async def merge(api: Api, duplicate: int, original: int, **body: object) -> int:
    response = await api.act(
        duplicate, "merge", "dispatcher", {"duplicate_of": original, "note": NOTE, **body}
    )
    return response.status_code


async def test_merge_needs_a_note_the_same_category_and_a_close_live_original(api: Api) -> None:
    original = (await api.report())["id"]
    duplicate = (await api.report(at=east(400)))["id"]
    manhole = (await api.report(category_code="manhole"))["id"]
    far = (await api.report(at=east(600)))["id"]
    merged = (await api.report())["id"]
    assert await merge(api, merged, original) == 200

    no_note = await api.act(duplicate, "merge", "dispatcher", {"duplicate_of": original})
    assert no_note.status_code == 422
    assert await merge(api, duplicate, manhole) == 422
    assert await merge(api, far, original) == 422
    assert await merge(api, duplicate, merged) == 422
    assert len(await api.history(duplicate)) == 1  # nothing written by the refusals

    assert await merge(api, duplicate, original) == 200
    last = (await api.history(duplicate))[-1]
    assert (last["note"], last["details"]["distance_m"]) == (NOTE, pytest.approx(400, abs=2))


@pytest.mark.usefixtures("postgres_only")
async def test_two_dispatchers_merging_both_ways_at_once_leave_one_live(api: Api) -> None:
    pairs = [((await api.report())["id"], (await api.report())["id"]) for _ in range(8)]
    for user in ("dispatcher", "town_dispatcher"):
        await api.headers(user)

    async def both_ways(a: int, b: int) -> list[int]:
        one, other = await asyncio.gather(
            api.act(a, "merge", "dispatcher", {"duplicate_of": b, "note": NOTE}),
            api.act(b, "merge", "town_dispatcher", {"duplicate_of": a, "note": NOTE}),
        )
        return [one.status_code, other.status_code]

    outcomes = await asyncio.gather(*(both_ways(a, b) for a, b in pairs))

    for (a, b), codes in zip(pairs, outcomes, strict=True):
        statuses = [
            (await api.get(f"/api/v1/tickets/{t}", "admin")).json()["status"] for t in (a, b)
        ]
        assert statuses.count("merged") == 1, (statuses, codes)
        assert sorted(codes) in ([200, 409], [200, 422]), codes
