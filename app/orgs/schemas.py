from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

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


AttributeDatatype = Literal[
    "string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"
]


class AttributeValue(BaseModel):
    key: Code
    name: Name


class ServiceAttribute(BaseModel):
    """A question citizens answer when they file a request of the category through Open311
    (a GeoReport v2 service definition attribute)."""

    code: Code
    datatype: AttributeDatatype
    description: Name
    required: bool = False
    variable: bool = Field(
        default=True, description="false: shown to the citizen as information, not asked"
    )
    datatype_description: str | None = Field(default=None, max_length=200)
    order: int = Field(ge=1)
    values: list[AttributeValue] = Field(
        default_factory=list, description="the choices of a singlevaluelist or multivaluelist"
    )

    @model_validator(mode="after")
    def _values_only_for_lists(self) -> "ServiceAttribute":
        is_list = self.datatype in ("singlevaluelist", "multivaluelist")
        if is_list and not self.values:
            raise ValueError(f"a {self.datatype} needs values")
        if not is_list and self.values:
            raise ValueError(f"a {self.datatype} takes no values")
        if len({v.key for v in self.values}) != len(self.values):
            raise ValueError("value keys must be unique")
        return self


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
    attributes: list[ServiceAttribute] = Field(
        default_factory=list,
        max_length=50,
        description="extra questions asked of citizens filing through Open311",
    )

    @field_validator("attributes")
    @classmethod
    def _unique_attributes(cls, value: list[ServiceAttribute]) -> list[ServiceAttribute]:
        if len({a.code for a in value}) != len(value) or len({a.order for a in value}) != len(
            value
        ):
            raise ValueError("attribute codes and orders must be unique")
        return value


class CategoryOut(CategoryIn):
    created_at: datetime
