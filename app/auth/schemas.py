from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.auth.models import Role
from app.fields import Name

RESERVED_USERNAMES = frozenset({"system"})  # the actor of automatic changes in ticket history


def _not_reserved(username: str) -> str:
    if username.lower() in RESERVED_USERNAMES:
        raise ValueError(f"{username!r} is reserved")
    return username


Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9_.-]{3,64}$"),
    AfterValidator(_not_reserved),
]
Password = Annotated[str, Field(min_length=8, max_length=128)]
DisplayName = Name


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")
    refresh_token: str


class UserCreate(BaseModel):
    username: Username
    password: Password
    display_name: DisplayName
    role: Role
    org_unit_code: str | None = Field(
        default=None, description="required except for admins; a grid for grid workers"
    )
    department_code: str | None = Field(default=None, description="required for handlers")


class UserUpdate(BaseModel):
    display_name: DisplayName | None = None
    password: Password | None = None
    role: Role | None = None
    org_unit_code: str | None = None
    department_code: str | None = None
    is_active: bool | None = Field(default=None, description="false disables the account")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    username: str
    display_name: str
    role: Role
    org_unit_code: str | None
    department_code: str | None
    is_active: bool
    created_at: datetime
