from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, select

from app.deps import AdminUser, CurrentUser, SessionDep, SettingsDep
from app.errors import PROBLEM_RESPONSES, NotFound
from app.fields import Comment
from app.pagination import Page, PageDep
from app.timing.models import CalendarDay
from app.timing.service import load_calendar, store_calendar_days

router = APIRouter(
    prefix="/api/v1/calendar", tags=["working calendar"], responses=PROBLEM_RESPONSES
)


class CalendarDayIn(BaseModel):
    working: bool
    note: Comment | None = None


class CalendarDayOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    day: date
    working: bool
    note: str | None


class EffectiveDay(BaseModel):
    day: date
    working: bool
    source: Literal["table", "official", "weekends"]


@router.get("/days", response_model=Page[CalendarDayOut])
async def list_days(
    session: SessionDep,
    _: CurrentUser,
    page: PageDep,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: date | None = None,
) -> Page[CalendarDayOut]:
    """The deployment's own days (which override the official calendar), by date."""
    query = select(CalendarDay)
    if from_ is not None:
        query = query.where(CalendarDay.day >= from_)
    if to is not None:
        query = query.where(CalendarDay.day < to)
    return await page.fetch(session, query, CalendarDay.day, CalendarDayOut.model_validate)


@router.get("/days/{day}", response_model=EffectiveDay)
async def effective_day(
    day: date, session: SessionDep, settings: SettingsDep, _: CurrentUser
) -> EffectiveDay:
    """Whether `day` is a working day, and on whose word: the calendar table, the official
    calendar, or plain weekends for a year without official data."""
    working, source = (await load_calendar(session, settings)).explain(day)
    return EffectiveDay(day=day, working=working, source=source)


@router.put("/days/{day}", response_model=CalendarDayOut)
async def set_day(day: date, data: CalendarDayIn, session: SessionDep, _: AdminUser) -> CalendarDay:
    """Declares a day working or not (a district's extra day off, or next year's official
    schedule before the library has it). Deadlines started afterwards count it."""
    await store_calendar_days(session, [(day, data.working, data.note)])
    await session.commit()
    stored = await session.get(CalendarDay, day, populate_existing=True)
    assert stored is not None
    return stored


@router.delete("/days/{day}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_day(day: date, session: SessionDep, _: AdminUser) -> Response:
    """Returns a day to the official calendar."""
    removed = await session.execute(delete(CalendarDay).where(CalendarDay.day == day))
    if removed.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"{day} is not in the calendar table")
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
