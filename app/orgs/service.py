from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app import reference
from app.auth.models import Role, User
from app.errors import Conflict, Invalid, NotFound
from app.orgs.geo import BoundaryError, parse_boundary
from app.orgs.models import Category, Department, Level, OrgUnit
from app.orgs.schemas import CategoryIn, CategoryOut, DepartmentIn, OrgUnitIn, ServiceAttribute
from app.reference import KIND, RefData, missing
from app.timing.limits import TimeLimit


def subtree_codes(path: str) -> Select[Any]:
    """Codes of the unit with materialised `path` and of every unit below it."""
    return select(OrgUnit.code).where(OrgUnit.path.startswith(path, autoescape=True))


def in_subtree(
    column: InstrumentedAttribute[str] | InstrumentedAttribute[str | None], path: str
) -> ColumnElement[bool]:
    return column.in_(subtree_codes(path))


async def get_by_code(
    session: AsyncSession, model: type[RefData], code: str, loc: list[str | int] | None = None
) -> RefData:
    """The row with this code, to change (`reference.unit` reads a unit). Unknown is a 404, or
    a 422 at `loc` when a request body names it."""
    row = await session.get(model, code)
    if row is None:
        raise missing(model, code, loc)
    return row


async def unit_in_scope(session: AsyncSession, user: User, code: str) -> OrgUnit:
    """An org unit the caller asks statistics about: in their subtree (404 otherwise)."""
    if user.org_unit is not None and code == user.org_unit.code:
        return user.org_unit  # read with the caller
    unit = await reference.unit(session, code)
    if user.role != Role.admin:
        assert user.org_unit is not None
        if not unit.path.startswith(user.org_unit.path):
            raise NotFound(f"org unit {code!r} is outside your scope")
    return unit


async def _refuse_duplicate(session: AsyncSession, model: type[RefData], code: str) -> None:
    if await session.get(model, code) is not None:
        raise Conflict(f"{KIND[model]} {code!r} already exists")


async def create_org_unit(session: AsyncSession, data: OrgUnitIn, now: datetime) -> OrgUnit:
    """Adds an org unit."""
    await _refuse_duplicate(session, OrgUnit, data.code)
    expected_parent_level = data.level.parent
    if expected_parent_level is None:
        if data.parent_code is not None:
            raise Invalid("a district has no parent", loc=["body", "parent_code"])
        path = f"/{data.code}/"
    else:
        if data.parent_code is None:
            raise Invalid(
                f"a {data.level} needs a parent {expected_parent_level}",
                loc=["body", "parent_code"],
            )
        parent = await get_by_code(session, OrgUnit, data.parent_code, ["body", "parent_code"])
        if parent.level != expected_parent_level:
            raise Invalid(
                f"the parent of a {data.level} must be a {expected_parent_level}, "
                f"and {parent.code!r} is a {parent.level}",
                loc=["body", "parent_code"],
            )
        path = f"{parent.path}{data.code}/"

    unit = OrgUnit(
        code=data.code,
        name=data.name,
        level=data.level,
        parent_code=data.parent_code,
        path=path,
        created_at=now,
    )
    if data.level == Level.grid and data.boundary is None:
        raise Invalid("a grid needs a boundary", loc=["body", "boundary"])
    if data.boundary is not None:
        try:
            unit.boundary, _ = parse_boundary(data.boundary)
        except BoundaryError as exc:
            raise Invalid(str(exc), loc=["body", "boundary"]) from exc
    session.add(unit)
    await session.flush()
    return unit


async def create_department(session: AsyncSession, data: DepartmentIn, now: datetime) -> Department:
    await _refuse_duplicate(session, Department, data.code)
    unit = await get_by_code(session, OrgUnit, data.org_unit_code, ["body", "org_unit_code"])
    if unit.level == Level.grid:
        raise Invalid(
            "a department belongs to a district, town or community, not a grid",
            loc=["body", "org_unit_code"],
        )
    department = Department(
        code=data.code, name=data.name, org_unit_code=data.org_unit_code, created_at=now
    )
    session.add(department)
    await session.flush()
    return department


async def create_category(session: AsyncSession, data: CategoryIn, now: datetime) -> Category:
    await _refuse_duplicate(session, Category, data.code)
    if data.default_department_code is not None:
        await get_by_code(
            session, Department, data.default_department_code, ["body", "default_department_code"]
        )
    urgent = data.urgent_time_limit
    category = Category(
        code=data.code,
        name=data.name,
        time_limit_value=data.time_limit.value,
        time_limit_unit=data.time_limit.unit,
        urgent_time_limit_value=urgent.value if urgent else None,
        urgent_time_limit_unit=urgent.unit if urgent else None,
        default_department_code=data.default_department_code,
        public=data.public,
        duplicate_radius_m=data.duplicate_radius_m,
        attributes=[
            a.model_dump(exclude_none=True) for a in sorted(data.attributes, key=lambda a: a.order)
        ],
        created_at=now,
    )
    session.add(category)
    await session.flush()
    return category


def category_limit(category: Category, urgent: bool) -> TimeLimit:
    """The handling limit of a category: the urgent one for urgent tickets when it has one."""
    urgent_limit = TimeLimit.of(category.urgent_time_limit_value, category.urgent_time_limit_unit)
    if urgent and urgent_limit is not None:
        return urgent_limit
    return TimeLimit(value=category.time_limit_value, unit=category.time_limit_unit)


def service_attributes(category: Category) -> list[ServiceAttribute]:
    """The category's Open311 questions as stored, in order."""
    return [ServiceAttribute.model_validate(a) for a in category.attributes]


def category_out(category: Category) -> CategoryOut:
    return CategoryOut(
        code=category.code,
        name=category.name,
        time_limit=TimeLimit(value=category.time_limit_value, unit=category.time_limit_unit),
        urgent_time_limit=TimeLimit.of(
            category.urgent_time_limit_value, category.urgent_time_limit_unit
        ),
        default_department_code=category.default_department_code,
        public=category.public,
        duplicate_radius_m=category.duplicate_radius_m,
        attributes=service_attributes(category),
        created_at=category.created_at,
    )
