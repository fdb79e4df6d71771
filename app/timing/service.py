import csv
import io
from datetime import date

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app import reference
from app.config import Settings
from app.timing.calendar import WorkingCalendar
from app.timing.models import CalendarDay

WORKING_WORDS = {
    "work": True,
    "working": True,
    "on": True,
    "1": True,
    "true": True,
    "上班": True,
    "班": True,
    "off": False,
    "holiday": False,
    "0": False,
    "false": False,
    "休": False,
    "休息": False,
}


async def load_calendar(session: AsyncSession, settings: Settings) -> WorkingCalendar:
    """The working calendar with the deployment's own days from the calendar table."""
    snapshot = await reference.current(session)
    return snapshot.calendar(settings.timezone, settings.working_periods)


class CalendarFileError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def parse_calendar_csv(text: str) -> list[tuple[date, bool, str | None]]:
    """Rows of `date,working[,note]` (a header line is optional): `2027-01-01,off,元旦`,
    `2027-02-07,work,春节调休`. Every bad line is reported; nothing is returned if one is bad."""
    days: list[tuple[date, bool, str | None]] = []
    problems: list[str] = []
    seen: dict[date, int] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].strip().startswith("#"):
            continue
        if number == 1 and row[0].strip().lower() in ("date", "day", "日期"):
            continue
        try:
            day = date.fromisoformat(row[0].strip())
        except ValueError:
            problems.append(f"line {number}: {row[0]!r} is not a date (YYYY-MM-DD)")
            continue
        word = row[1].strip().lower() if len(row) > 1 else ""
        if word not in WORKING_WORDS:
            problems.append(f"line {number}: {word!r} is neither 'work' nor 'off'")
            continue
        note = row[2].strip()[:200] if len(row) > 2 and row[2].strip() else None
        if day in seen:
            problems.append(f"line {number}: {day} is already on line {seen[day]}")
            continue
        seen[day] = number
        days.append((day, WORKING_WORDS[word], note))
    if problems:
        raise CalendarFileError(problems)
    return days


async def store_calendar_days(
    session: AsyncSession, days: list[tuple[date, bool, str | None]]
) -> int:
    """Adds or replaces the given days in the calendar table."""
    if not days:
        return 0
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    rows = [{"day": day, "working": working, "note": note} for day, working, note in days]
    statement = insert(CalendarDay).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[CalendarDay.day],
        set_={"working": statement.excluded.working, "note": statement.excluded.note},
    )
    await session.execute(statement)
    return len(rows)
