from datetime import datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from app.auth.models import Role
from app.auth.passwords import MAX_LENGTH, MIN_LENGTH, password_problem
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


def _not_common(password: str) -> str:
    problem = password_problem(password)
    if problem is not None:
        raise ValueError(problem)
    return password


Password = Annotated[
    str,
    Field(
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
        description=f"at least {MIN_LENGTH} characters; not one of the most common passwords, "
        "nor the username (case ignored)",
    ),
    AfterValidator(_not_common),
]
DisplayName = Name


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")
    refresh_token: str


class UserCreate(BaseModel):
    username: Username = Field(
        description="letters, digits, `_`, `.` and `-`; unique whatever the case (`Worker` is "
        "taken when `worker` exists); sign-in ignores case"
    )
    password: Password
    display_name: DisplayName
    role: Role
    org_unit_code: str | None = Field(
        default=None, description="required except for admins; a grid for grid workers"
    )
    department_code: str | None = Field(default=None, description="required for handlers")

    @field_validator("password")
    @classmethod
    def _not_the_username(cls, password: str, info: ValidationInfo) -> str:
        problem = password_problem(password, info.data.get("username"))
        if problem is not None:
            raise ValueError(problem)
        return password


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


class LogoutIn(BaseModel):
    refresh_token: str = Field(
        min_length=1,
        max_length=512,
        description="a refresh token of the session to end: any token of its rotation",
    )
