from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.auth import security
from app.auth.security import issue_access_token, read_access_token
from app.clock import FrozenClock
from app.config import Settings
from app.errors import Invalid
from app.orgs.geo import BoundaryError, parse_boundary
from app.orgs.models import Level
from app.pagination import PageParams
from app.tickets import deadlines
from app.tickets.models import Ticket
from app.tickets.numbers import ticket_number
from app.timing.limits import TimeLimit, TimeUnit, add_limit, warning_threshold

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def test_ticket_number_uses_the_local_day() -> None:
    ticket = Ticket(id=123, reported_at=datetime(2026, 11, 21, 16, 30, tzinfo=UTC))
    number = ticket_number(ticket, "NH", ZoneInfo("Asia/Shanghai"))
    assert number == "NH-20261122-000123"  # 00:30 on the 22nd in Shanghai
    big = Ticket(id=12_345_678, reported_at=T0)
    assert ticket_number(big, "NH", ZoneInfo("Asia/Shanghai")) == "NH-20261123-12345678"


def test_level_parents() -> None:
    assert [level.parent for level in Level] == [None, Level.district, Level.town, Level.community]


def test_natural_limits() -> None:
    minutes, hours = TimeUnit.minutes, TimeUnit.hours
    assert add_limit(T0, TimeLimit(value=90, unit=minutes), None) == T0 + timedelta(hours=1.5)
    assert add_limit(T0, TimeLimit(value=3, unit=hours), None) == T0 + timedelta(hours=3)
    assert warning_threshold(T0, T0 + timedelta(hours=10), hours, None) == T0 + timedelta(hours=8)
    with pytest.raises(ValueError, match="calendar"):
        add_limit(T0, TimeLimit(value=3, unit=TimeUnit.working_hours), None)


def test_time_limit_validation() -> None:
    with pytest.raises(ValueError):
        TimeLimit(value=0, unit=TimeUnit.hours)
    with pytest.raises(ValueError):
        TimeLimit.model_validate({"value": 1, "unit": "fortnights"})
    with pytest.raises(ValueError, match="at most 250"):
        TimeLimit(value=251, unit=TimeUnit.working_days)


def ticket_with_deadline(status: str, limit_hours: int = 10) -> Ticket:
    ticket = Ticket(status=status, overdue=False)
    limit = TimeLimit(value=limit_hours, unit=TimeUnit.hours)
    deadlines.start_deadline(ticket, T0, limit, None)
    return ticket


def test_warning_colours() -> None:
    ticket = ticket_with_deadline("in_progress")
    assert deadlines.warning_of(ticket, T0 + timedelta(hours=7, minutes=59)) == "green"
    assert deadlines.warning_of(ticket, T0 + timedelta(hours=8)) == "yellow"
    assert deadlines.warning_of(ticket, T0 + timedelta(hours=10)) == "red"
    assert deadlines.warning_of(ticket_with_deadline("suspended"), T0) is None
    assert deadlines.warning_of(ticket_with_deadline("feedback"), T0 + timedelta(days=1)) is None


def test_overdue_is_sticky() -> None:
    ticket = ticket_with_deadline("in_progress")
    late = T0 + timedelta(hours=11)
    assert deadlines.is_overdue(ticket, late)
    deadlines.note_missed_deadline(ticket, late)
    ticket.status = "closed"
    assert deadlines.is_overdue(ticket, late) and ticket.overdue


@given(st.integers(min_value=1, max_value=10_000), st.integers(min_value=0, max_value=10**6))
def test_resume_keeps_the_warning_fraction(limit_minutes: int, pause_seconds: int) -> None:
    ticket = Ticket(status="in_progress")
    limit = TimeLimit(value=limit_minutes, unit=TimeUnit.minutes)
    deadlines.start_deadline(ticket, T0, limit, None)
    paused_at = T0 + timedelta(minutes=limit_minutes // 2)
    resumed_at = paused_at + timedelta(seconds=pause_seconds)
    deadlines.resume_deadline(ticket, paused_at, resumed_at, None)
    assert ticket.deadline_at - ticket.deadline_started_at == timedelta(minutes=limit_minutes)
    assert ticket.deadline_at == T0 + timedelta(minutes=limit_minutes, seconds=pause_seconds)
    assert ticket.warning_at == warning_threshold(
        ticket.deadline_started_at, ticket.deadline_at, TimeUnit.minutes, None
    )


SQUARE = [[113.1, 23.0], [113.2, 23.0], [113.2, 23.1], [113.1, 23.1], [113.1, 23.0]]
HOLE = [[113.12, 23.02], [113.14, 23.02], [113.14, 23.04], [113.12, 23.04], [113.12, 23.02]]


def test_valid_boundaries() -> None:
    stored, square = parse_boundary({"type": "Polygon", "coordinates": [SQUARE], "crs": "x"})
    assert stored == {"type": "Polygon", "coordinates": [SQUARE]} and square.area > 0
    _, multi = parse_boundary({"type": "MultiPolygon", "coordinates": [[SQUARE, HOLE]]})
    assert multi.area < 0.01


@pytest.mark.parametrize(
    "geojson",
    [
        {"type": "Polygon", "coordinates": [SQUARE[:-1]]},
        {"type": "Polygon", "coordinates": [[[113.1, 23.0], [113.2, 23.0], [113.1, 23.0]]]},
        {
            "type": "Polygon",
            "coordinates": [
                [[113.1, 23.1], [113.2, 23.2], [113.2, 23.1], [113.1, 23.2], [113.1, 23.1]]
            ],
        },
        {"type": "Polygon", "coordinates": [[[200, 23.0], [201, 23.0], [201, 24], [200, 23.0]]]},
        {"type": "Polygon", "coordinates": [[["a", "b"], [1, 2], [3, 4], ["a", "b"]]]},
        {"type": "Polygon", "coordinates": [[[*p, "x"] for p in SQUARE]]},
        {"type": "Polygon", "coordinates": [[[True, False], [1, 0], [1, 1], [True, False]]]},
        {"type": "Polygon", "coordinates": []},
        {"type": "LineString", "coordinates": SQUARE},
        {"coordinates": [SQUARE]},
    ],
)
def test_invalid_boundaries(geojson: dict[str, object]) -> None:
    with pytest.raises(BoundaryError):
        parse_boundary(geojson)


def test_cursor_round_trip_and_tampering() -> None:
    params = PageParams(limit=2, cursor=None)
    page = params.page([5, 4, 3], key=lambda r: r, render=str)
    assert page.items == ["5", "4"] and page.next_cursor
    assert PageParams(limit=2, cursor=page.next_cursor).after() == 4
    assert params.page([5, 4], key=lambda r: r, render=str).next_cursor is None
    with pytest.raises(Invalid):
        PageParams(limit=2, cursor="not-a-cursor").after()


def test_bootstrap_admin_setting() -> None:
    assert Settings(bootstrap_admin="root:pw:with:colons").bootstrap_credentials == (
        "root",
        "pw:with:colons",
    )
    with pytest.raises(ValueError):
        _ = Settings(bootstrap_admin="root").bootstrap_credentials


def test_frozen_clock_needs_an_aware_time() -> None:
    with pytest.raises(ValueError):
        FrozenClock(datetime(2026, 1, 1))
    clock = FrozenClock(T0)
    clock.advance(timedelta(minutes=5))
    assert clock.now() == T0 + timedelta(minutes=5)


def test_retry_delays_grow_to_an_hour_and_stay() -> None:
    from app.notifications.service import LONGEST_RETRY, retry_delay

    assert [retry_delay(n).total_seconds() for n in (1, 2, 3)] == [5, 10, 20]
    assert retry_delay(12) == LONGEST_RETRY
    assert retry_delay(10_000) == LONGEST_RETRY  # no overflow after a long outage


def test_webhook_urls_are_checked() -> None:
    signed = {"webhook_secret": "s" * 16}
    assert Settings(webhook_urls="http://a/x, https://b/y", **signed).webhook_url_list == [
        "http://a/x",
        "https://b/y",
    ]
    for bad in ("ftp://a", "http://" + "x" * 500):
        with pytest.raises(ValueError):
            Settings(webhook_urls=bad, **signed)


def test_access_tokens_are_checked_each_time_and_only_signed_ones_remembered() -> None:
    secret = "s" * 40
    token = issue_access_token(secret, "worker", 3, T0, timedelta(minutes=30))
    claims = read_access_token(secret, token, T0)
    assert claims is not None and (claims.username, claims.generation) == ("worker", 3)
    assert read_access_token(secret, token, T0 + timedelta(minutes=30)) is None  # expired
    assert read_access_token("t" * 40, token, T0) is None  # another service's secret
    assert read_access_token(secret, token.rsplit(".", 1)[0] + ".forged", T0) is None  # tampered
    assert read_access_token(secret, "x" * (security.MAX_TOKEN_LENGTH + 1), T0) is None
    security._remembered_signature.cache_clear()
    for forged in ("a.b.c", token.rsplit(".", 1)[0] + ".forged"):
        assert read_access_token(secret, forged, T0) is None
    read_access_token(secret, token, T0)
    assert security._remembered_signature.cache_info().currsize == 1
