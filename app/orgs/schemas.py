from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.fields import Name
from app.orgs.models import Level
from app.timing.limits import TimeLimit

Code = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_-]{1,32}$"),
    Field(description="unique code: letters, digits, '-' and '_' (at most 32)"),
]


class OrgUnitIn(BaseModel):
    code: Code
    name: Name
    level: Level
    parent_code: Code | None = None
    boundary: dict[str, Any] | None = Field(
        default=None, description="GeoJSON Polygon or MultiPolygon (WGS84); required for grids"
    )


class OrgUnitOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    level: Level
    parent_code: str | None
    boundary: dict[str, Any] | None
    created_at: datetime


class DepartmentIn(BaseModel):
    code: Code
    name: Name
    org_unit_code: Code


class DepartmentOut(DepartmentIn):
    model_config = ConfigDict(from_attributes=True)

    created_at: datetime


class CategoryIn(BaseModel):
    code: Code
    name: Name
    time_limit: TimeLimit
    urgent_time_limit: TimeLimit | None = None
    default_department_code: Code | None = None
    public: bool = Field(default=False, description="listed on the Open311 channel")
    duplicate_radius_m: int = Field(
        default=100,
        ge=1,
        le=5000,
        description="a report within this distance of an open ticket of the category reported "
        "in the last 72 hours is flagged as a possible duplicate",
    )


class CategoryOut(CategoryIn):
    created_at: datetime
