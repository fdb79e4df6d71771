"""Working-time arithmetic on the real 2025 and 2026 State Council calendars."""

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.timing import calendar as calendar_module
from app.timing.calendar import WorkingCalendar, parse_periods
from app.timing.limits import TimeLimit, TimeUnit, add_limit, warning_threshold

SHANGHAI = ZoneInfo("Asia/Shanghai")
PERIODS = parse_periods("09:00-12:00,13:30-18:00")
CAL = WorkingCalendar(SHANGHAI, PERIODS, {})


def at(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=SHANGHAI)


def days(n: int) -> TimeLimit:
    return TimeLimit(value=n, unit=TimeUnit.working_days)


def hours(n: int) -> TimeLimit:
    return TimeLimit(value=n, unit=TimeUnit.working_hours)


@pytest.mark.parametrize(
    ("start", "limit", "due"),
    [
        # 2025 National Day: Oct 1-8 off; Sunday Sep 28 and Saturday Oct 11 are adjusted workdays.
        (at(2025, 9, 26, 16), days(1), at(2025, 9, 28, 16)),  # Friday -> the Sunday workday
        (at(2025, 9, 26, 16), days(3), at(2025, 9, 30, 16)),
        (at(2025, 9, 26, 16), days(4), at(2025, 10, 9, 16)),  # over the holiday week
        (at(2025, 9, 30, 16), days(3), at(2025, 10, 11, 16)),  # to the Saturday workday
        (at(2025, 9, 27, 10), days(1), at(2025, 9, 29, 9)),  # Saturday: counted from Sunday 09:00
        (at(2025, 10, 3, 10), days(1), at(2025, 10, 10, 9)),  # inside the holiday
        (at(2025, 9, 30, 17), hours(2), at(2025, 10, 9, 10)),  # 1 h before, 1 h after the holiday
        # 2026 Spring Festival: Feb 15-23 off; Saturdays Feb 14 and Feb 28 are adjusted workdays.
        (at(2026, 2, 13, 16), days(1), at(2026, 2, 14, 16)),
        (at(2026, 2, 13, 16), days(2), at(2026, 2, 24, 16)),
        (at(2026, 2, 27, 16), days(1), at(2026, 2, 28, 16)),
        # Ordinary weeks: weekend, lunch break, outside working hours, period ends.
        (at(2026, 11, 20, 16), days(1), at(2026, 11, 23, 16)),  # Friday -> Monday
        (at(2026, 11, 21, 16), days(1), at(2026, 11, 24, 9)),  # Saturday: from Monday 09:00
        (at(2026, 11, 23, 11), hours(2), at(2026, 11, 23, 14, 30)),  # over lunch
        (at(2026, 11, 23, 12, 30), hours(1), at(2026, 11, 23, 14, 30)),  # dispatched at lunch
        (at(2026, 11, 23, 9), hours(3), at(2026, 11, 23, 12)),  # ends with the morning period
        (at(2026, 11, 23, 20), hours(1), at(2026, 11, 24, 10)),  # dispatched in the evening
        (at(2026, 11, 23, 7), hours(8), at(2026, 11, 24, 9, 30)),  # 7.5 h a day
        (at(2026, 11, 27, 17), days(1), at(2026, 11, 30, 17)),  # Friday 17:00 -> Monday 17:00
    ],
)
def test_limits_on_the_official_calendar(start: datetime, limit: TimeLimit, due: datetime) -> None:
    assert add_limit(start, limit, CAL) == due


def test_natural_units_ignore_the_calendar() -> None:
    start = at(2025, 9, 30, 17)
    assert add_limit(start, TimeLimit(value=2, unit=TimeUnit.hours), CAL) == at(2025, 9, 30, 19)


def test_a_year_without_official_data_counts_weekends_and_logs_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calendar_module, "_years_without_official_calendar", set())
    with caplog.at_level(logging.WARNING, logger="app.timing.calendar"):
        # 2026-12-31 is a Thursday; 2027 is not in the library yet: Friday Jan 1 counts.
        assert add_limit(at(2026, 12, 31, 16), days(1), CAL) == at(2027, 1, 1, 16)
        assert add_limit(at(2026, 12, 31, 16), days(2), CAL) == at(2027, 1, 4, 16)
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
    assert "2027" in caplog.records[0].getMessage()


def test_the_calendar_table_overrides_and_fills_in() -> None:
    loaded = WorkingCalendar(
        SHANGHAI,
        PERIODS,
        {
            date(
                2027, 1, 1
            ): False,  # the official New Year's Day, loaded before the library has it
            date(2026, 11, 24): False,  # a district's extra day off
            date(2026, 11, 28): True,  # and a Saturday made a working day
        },
    )
    assert add_limit(at(2026, 12, 31, 16), days(1), loaded) == at(2027, 1, 4, 16)
    assert add_limit(at(2026, 11, 23, 16), days(1), loaded) == at(2026, 11, 25, 16)
    assert add_limit(at(2026, 11, 27, 16), days(1), loaded) == at(2026, 11, 28, 16)


def test_working_time_between() -> None:
    assert CAL.working_time_between(at(2026, 11, 23, 8), at(2026, 11, 24, 8)) == timedelta(
        hours=7.5
    )
    assert CAL.working_time_between(at(2025, 9, 30, 17), at(2025, 10, 9, 10)) == timedelta(hours=2)
    assert CAL.working_time_between(at(2026, 11, 23, 12), at(2026, 11, 23, 13)) == timedelta()
    assert CAL.working_time_between(at(2026, 11, 24), at(2026, 11, 23)) == timedelta()


def test_warning_point_in_working_time() -> None:
    start, due = at(2026, 11, 23, 9), at(2026, 11, 24, 11, 30)  # 7.5 + 2.5 working hours
    assert warning_threshold(start, due, TimeUnit.working_hours, CAL) == at(2026, 11, 24, 9, 30)


def test_periods_are_validated() -> None:
    for text in ("09:00-08:00", "09:00-12:00,11:00-13:00", "nine to five", ""):
        with pytest.raises(ValueError):
            parse_periods(text)
    assert parse_periods("13:00-17:00, 08:30-12:00")[0][0].hour == 8


instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 20)).map(
    lambda d: d.replace(tzinfo=SHANGHAI)
)


@settings(max_examples=200, deadline=None)
@given(instants, st.integers(min_value=0, max_value=200 * 60))
def test_adding_then_measuring_gives_the_duration_back(start: datetime, minutes: int) -> None:
    duration = timedelta(minutes=minutes)
    end = CAL.add_working_time(start, duration)
    assert CAL.working_time_between(start, end) == duration


@settings(max_examples=200, deadline=None)
@given(instants, st.integers(min_value=1, max_value=30))
def test_working_days_span_whole_working_days(start: datetime, n: int) -> None:
    begin = CAL.next_working_moment(start)
    due = CAL.add_working_days(start, n)
    assert due.astimezone(SHANGHAI).time() == begin.astimezone(SHANGHAI).time()
    assert CAL.is_working_day(due.astimezone(SHANGHAI).date())
    assert CAL.working_time_between(begin, due) == n * CAL.day_length
