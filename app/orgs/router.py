from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, status
from pydantic import BaseModel
from sqlalchemy import select

from app.deps import AdminUser, ClockDep, CurrentUser, SessionDep
from app.errors import PROBLEM_RESPONSES
from app.orgs import imports, service
from app.orgs.models import Category, Department, Level, OrgUnit
from app.orgs.schemas import (
    CategoryIn,
    CategoryOut,
    DepartmentIn,
    DepartmentOut,
    OrgUnitIn,
    OrgUnitOut,
)
from app.pagination import Page, PageDep

router = APIRouter(prefix="/api/v1", tags=["reference data"], responses=PROBLEM_RESPONSES)


@router.post("/org-units", status_code=status.HTTP_201_CREATED, response_model=OrgUnitOut)
async def create_org_unit(
    data: OrgUnitIn, session: SessionDep, clock: ClockDep, _: AdminUser
) -> OrgUnit:
    """Adds a district, town, community or grid. A child is exactly one level below its
    parent; a grid needs a valid GeoJSON boundary."""
    unit = await service.create_org_unit(session, data, clock.now())
    await session.commit()
    return unit


class ImportOut(BaseModel):
    created: int
    updated: int


@router.post("/org-units/import", response_model=ImportOut)
async def import_org_units(
    collection: Annotated[dict[str, Any], Body(description="a GeoJSON FeatureCollection")],
    session: SessionDep,
    clock: ClockDep,
    _: AdminUser,
) -> ImportOut:
    """Loads or updates org units from a GeoJSON FeatureCollection whose features carry
    `code`, `name`, `level` and `parent_code` properties (grids with a Polygon or MultiPolygon
    geometry). All or nothing: every bad feature is listed in `errors` by index."""
    report = await imports.import_org_units(session, collection, clock.now())
    await session.commit()
    return ImportOut(created=report.created, updated=report.updated)


@router.get("/org-units", response_model=Page[OrgUnitOut])
async def list_org_units(
    session: SessionDep,
    _: CurrentUser,
    page: PageDep,
    level: Level | None = None,
    parent_code: str | None = None,
    within: Annotated[str | None, Query(description="only this unit's subtree")] = None,
) -> Page[OrgUnitOut]:
    query = select(OrgUnit)
    if level is not None:
        query = query.where(OrgUnit.level == level)
    if parent_code is not None:
        query = query.where(OrgUnit.parent_code == parent_code)
    if within is not None:
        root = await service.get_by_code(session, OrgUnit, within)
        query = query.where(service.in_subtree(OrgUnit.code, root.path))
    return await page.fetch(session, query, OrgUnit.code, OrgUnitOut.model_validate)


@router.get("/org-units/{code}", response_model=OrgUnitOut)
async def get_org_unit(code: str, session: SessionDep, _: CurrentUser) -> OrgUnit:
    return await service.get_by_code(session, OrgUnit, code)


@router.post("/departments", status_code=status.HTTP_201_CREATED, response_model=DepartmentOut)
async def create_department(
    data: DepartmentIn, session: SessionDep, clock: ClockDep, _: AdminUser
) -> Department:
    department = await service.create_department(session, data, clock.now())
    await session.commit()
    return department


@router.get("/departments", response_model=Page[DepartmentOut])
async def list_departments(
    session: SessionDep, _: CurrentUser, page: PageDep, org_unit_code: str | None = None
) -> Page[DepartmentOut]:
    query = select(Department)
    if org_unit_code is not None:
        query = query.where(Department.org_unit_code == org_unit_code)
    return await page.fetch(session, query, Department.code, DepartmentOut.model_validate)


@router.get("/departments/{code}", response_model=DepartmentOut)
async def get_department(code: str, session: SessionDep, _: CurrentUser) -> Department:
    return await service.get_by_code(session, Department, code)


@router.post("/categories", status_code=status.HTTP_201_CREATED, response_model=CategoryOut)
async def create_category(
    data: CategoryIn, session: SessionDep, clock: ClockDep, _: AdminUser
) -> CategoryOut:
    category = await service.create_category(session, data, clock.now())
    await session.commit()
    return service.category_out(category)


@router.get("/categories", response_model=Page[CategoryOut])
async def list_categories(session: SessionDep, _: CurrentUser, page: PageDep) -> Page[CategoryOut]:
    return await page.fetch(session, select(Category), Category.code, service.category_out)


@router.get("/categories/{code}", response_model=CategoryOut)
async def get_category(code: str, session: SessionDep, _: CurrentUser) -> CategoryOut:
    return service.category_out(await service.get_by_code(session, Category, code))
