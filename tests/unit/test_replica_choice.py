"""Which replica a read goes to (`Replicas.choose`), by the lag each was last found at and by
whether the caller wrote within the lag limit, on an injected clock."""

from typing import Any

from app.replicas import Replica, Replicas, replica_name

MAX_LAG = 5.0


def _replica(name: str, in_use: bool) -> Replica:
    nothing: Any = None  # engines are not touched by the choice
    return Replica(name, nothing, nothing, nothing, lag=0.0 if in_use else None, in_use=in_use)


def test_reads_take_the_replicas_in_use_in_turn_and_none_when_none_is() -> None:
    a, b, c = _replica("a", True), _replica("b", False), _replica("c", True)
    replicas = Replicas([a, b, c], MAX_LAG)
    chosen = [replicas.choose(None) for _ in range(4)]
    assert [r.name for r in chosen if r] == ["a", "c", "a", "c"]
    a.in_use = c.in_use = False
    assert replicas.choose(None) is None


def test_a_caller_who_wrote_reads_the_primary_until_the_lag_limit_has_passed() -> None:
    now = [100.0]
    replicas = Replicas([_replica("a", True)], MAX_LAG, monotonic=lambda: now[0])
    replicas.note_write("Bearer writer")
    assert replicas.choose("Bearer writer") is None
    assert replicas.choose("Bearer someone-else") is not None
    now[0] += MAX_LAG
    assert replicas.choose("Bearer writer") is None  # the limit itself still counts
    now[0] += 0.01
    assert replicas.choose("Bearer writer") is not None


def test_writers_are_forgotten_once_their_window_has_passed() -> None:
    now = [0.0]
    replicas = Replicas([_replica("a", True)], MAX_LAG, monotonic=lambda: now[0])
    for number in range(10_001):
        replicas.note_write(f"Bearer {number}")
    now[0] += MAX_LAG + 1
    replicas.note_write("Bearer last")
    assert replicas.choose("Bearer 5") is not None
    assert len(replicas._writers) == 1


def test_without_replicas_nothing_is_kept() -> None:
    replicas = Replicas([], MAX_LAG)
    replicas.note_write("Bearer writer")
    assert replicas._writers == {}
    assert replicas.choose("Bearer writer") is None


def test_a_replica_is_named_without_its_credentials() -> None:
    url = "postgresql+asyncpg://gridwork:secret@standby.internal:5433/gridwork"
    assert replica_name(url) == "standby.internal:5433/gridwork"
