"""The working calendar: which days are working days, and working-time arithmetic.

A day's status comes, in order, from the deployment's own calendar table (a district's extra
day off or on, or a year's official schedule loaded before the library has it), from the
`chinesecalendar` library (public holidays and adjusted workdays, 调休), and for a year the
library does not cover from plain weekends. Every working day has the same working periods
(09:00–12:00 and 13:30–18:00 local time unless configured).
"""

import itertools
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

log = logging.getLogger(__name__)
_years_without_official_calendar: set[int] = set()

Period = tuple[time, time]


def parse_periods(text: str) -> list[Period]:
    """`09:00-12:00,13:30-18:00` as sorted, non-overlapping periods."""
    periods: list[Period] = []
    for part in text.split(","):
        start_text, sep, end_text = part.strip().partition("-")
        if not sep:
            raise ValueError(f"working period {part!r} is not HH:MM-HH:MM")
        start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
        if start >= end:
            raise ValueError(f"working period {part!r} ends before it starts")
        periods.append((start, end))
    periods.sort()
    for (_, end), (start, _) in itertools.pairwise(periods):
        if start < end:
            raise ValueError("working periods overlap")
    if not periods:
        raise ValueError("there must be at least one working period")
    return periods


def official_working_day(day: date) -> bool | None:
    """The State Council calendar as the library knows it; None for a year it does not cover."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        if day.year not in _years_without_official_calendar:
            _years_without_official_calendar.add(day.year)
            log.warning(
                "no official holiday calendar for %s: counting plain weekends plus the calendar "
                "table; load the year's schedule with `gridwork calendar import`",
                day.year,
            )
        return None


class WorkingCalendar:
    def __init__(
        self, tz: ZoneInfo, periods: Sequence[Period], overrides: Mapping[date, bool]
    ) -> None:
        self.tz = tz
        self.periods = list(periods)
        self.overrides = dict(overrides)
        self._days: dict[date, tuple[bool, str]] = {}
        self.day_length = sum(
            (
                datetime.combine(date.min, end) - datetime.combine(date.min, start)
                for start, end in self.periods
            ),
            timedelta(),
        )

    def is_working_day(self, day: date) -> bool:
        return self.explain(day)[0]

    def explain(self, day: date) -> tuple[bool, str]:
        """Whether `day` is a working day, and on whose word: `table`, `official` or
        `weekends` (a year without official data)."""
        if (known := self._days.get(day)) is None:
            known = self._days[day] = self._explain(day)
        return known

    def _explain(self, day: date) -> tuple[bool, str]:
        if day in self.overrides:
            return self.overrides[day], "table"
        official = official_working_day(day)
        if official is not None:
            return official, "official"
        return day.weekday() < 5, "weekends"

    def _periods_on(self, day: date) -> list[tuple[datetime, datetime]]:
        if not self.is_working_day(day):
            return []
        return [
            (datetime.combine(day, start, self.tz), datetime.combine(day, end, self.tz))
            for start, end in self.periods
        ]

    def _local_day(self, at: datetime) -> date:
        return at.astimezone(self.tz).date()

    def add_working_time(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of working time after `start`. Counting starts at `start` when
        that is working time, otherwise at the start of the next working period; a duration
        that ends exactly at the end of a period ends there."""
        if duration < timedelta():
            raise ValueError("a working duration cannot be negative")
        remaining, day = duration, self._local_day(start)
        while True:
            for period_start, period_end in self._periods_on(day):
                if period_end <= start:
                    continue
                begin = max(period_start, start)
                if remaining <= period_end - begin:
                    return (begin + remaining).astimezone(UTC)
                remaining -= period_end - begin
            day += timedelta(days=1)

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time inside [start, end); zero when end is not after start."""
        total, day, last = timedelta(), self._local_day(start), self._local_day(end)
        while day <= last and end > start:
            for period_start, period_end in self._periods_on(day):
                overlap = min(period_end, end) - max(period_start, start)
                if overlap > timedelta():
                    total += overlap
            day += timedelta(days=1)
        return total

    def next_working_moment(self, at: datetime) -> datetime:
        return self.add_working_time(at, timedelta())

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The same clock time `days` working days after the working moment counting starts
        from (`start` itself, or the start of the next working period)."""
        begin = self.next_working_moment(start).astimezone(self.tz)
        day, counted = begin.date(), 0
        while counted < days:
            day += timedelta(days=1)
            counted += self.is_working_day(day)
        return datetime.combine(day, begin.time(), self.tz).astimezone(UTC)
