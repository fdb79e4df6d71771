from typing import Annotated, Literal

from fastapi import APIRouter, Form, status
from sqlalchemy import select

from app.auth import service
from app.auth.models import Role, User
from app.auth.schemas import TokenOut, UserCreate, UserOut, UserUpdate
from app.deps import AdminUser, ClockDep, CurrentUser, SessionDep, SettingsDep
from app.errors import PROBLEM_RESPONSES, AppError, Invalid, NotFound
from app.orgs.models import OrgUnit
from app.orgs.service import get_by_code, in_subtree
from app.pagination import Page, PageDep

router = APIRouter(prefix="/api/v1", tags=["auth and users"], responses=PROBLEM_RESPONSES)


@router.post("/auth/token", response_model=TokenOut)
async def token(
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    grant_type: Annotated[Literal["password", "refresh_token"], Form()] = "password",
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
    refresh_token: Annotated[str | None, Form()] = None,
) -> TokenOut:
    """OAuth2 token endpoint: the password grant (`username`, `password`) or the refresh-token
    grant (`refresh_token`). Refresh tokens rotate: each is good for one use. After repeated
    failures an account is locked for a while (429 with Retry-After)."""
    now = clock.now()
    try:
        if grant_type == "password":
            if not username or not password:
                raise Invalid("username and password are required", loc=["body", "username"])
            issued = await service.login(session, username, password, settings, now)
        else:
            if not refresh_token:
                raise Invalid("refresh_token is required", loc=["body", "refresh_token"])
            issued = await service.refresh(session, refresh_token, settings, now)
    except AppError:
        await session.commit()  # keep the failure count and any revocation
        raise
    await session.commit()
    return issued


@router.get("/users/me", response_model=UserOut)
async def me(user: CurrentUser) -> User:
    return user


async def _get_user(session: SessionDep, username: str) -> User:
    user = await session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"user {username!r} does not exist")
    return user


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
async def create_user(data: UserCreate, session: SessionDep, clock: ClockDep, _: AdminUser) -> User:
    user = await service.create_user(session, data, clock.now())
    await session.commit()
    return user


@router.get("/users", response_model=Page[UserOut])
async def list_users(
    session: SessionDep,
    _: AdminUser,
    page: PageDep,
    role: Role | None = None,
    org_unit: str | None = None,
    is_active: bool | None = None,
) -> Page[UserOut]:
    query = select(User)
    if role is not None:
        query = query.where(User.role == role)
    if org_unit is not None:
        root = await get_by_code(session, OrgUnit, org_unit)
        query = query.where(in_subtree(User.org_unit_code, root.path))
    if is_active is not None:
        query = query.where(User.is_active == is_active)
    return await page.fetch(session, query, User.username, UserOut.model_validate)


@router.get("/users/{username}", response_model=UserOut)
async def get_user(username: str, session: SessionDep, _: AdminUser) -> User:
    return await _get_user(session, username)


@router.patch("/users/{username}", response_model=UserOut)
async def update_user(
    username: str, data: UserUpdate, session: SessionDep, clock: ClockDep, _: AdminUser
) -> User:
    """Changes a user. Disabling an account or setting a new password signs it out everywhere."""
    user = await service.update_user(session, await _get_user(session, username), data, clock.now())
    await session.commit()
    return user


@router.post("/users/{username}/revoke-tokens", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_tokens(username: str, session: SessionDep, clock: ClockDep, _: AdminUser) -> None:
    """Signs the user out on every device (a lost phone): every access and refresh token
    issued so far stops working."""
    await service.revoke_sessions(session, await _get_user(session, username), clock.now())
    await session.commit()
