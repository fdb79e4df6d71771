from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request, status
from sqlalchemy import select

from app.auth import service
from app.auth.models import Role, User
from app.auth.schemas import LogoutIn, TokenOut, UserCreate, UserOut, UserUpdate
from app.deps import AdminUser, ClockDep, CurrentUser, SessionDep, SettingsDep
from app.errors import PROBLEM_RESPONSES, AppError, Invalid, NotFound, Problem
from app.orgs.models import OrgUnit
from app.orgs.service import get_by_code, in_subtree
from app.pagination import Page, PageDep

router = APIRouter(prefix="/api/v1", tags=["auth and users"], responses=PROBLEM_RESPONSES)


@router.post(
    "/auth/token",
    response_model=TokenOut,
    responses={
        429: {
            "model": Problem,
            "description": "too many failed sign-ins from the client's address (Retry-After)",
            "content": {"application/problem+json": {}},
        }
    },
)
async def token(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    grant_type: Annotated[Literal["password", "refresh_token"], Form()] = "password",
    username: Annotated[str | None, Form()] = None,
    password: Annotated[str | None, Form()] = None,
    refresh_token: Annotated[str | None, Form()] = None,
) -> TokenOut:
    """OAuth2 token endpoint: the password grant (`username`, `password`) or the refresh-token
    grant (`refresh_token`).

    Usernames are matched whatever their case. After `GRIDWORK_LOGIN_MAX_FAILURES` wrong
    passwords an account is locked for `GRIDWORK_LOGIN_LOCKOUT_MINUTES`; a locked, disabled or
    unknown account and a wrong password all answer the same 401, so the answer never tells
    whether a username exists. After `GRIDWORK_LOGIN_MAX_FAILURES_PER_ADDRESS` failures from
    one client address (IPv6: one /64), sign-ins from it answer 429 with Retry-After.

    Refresh tokens rotate: each is good for one use. A resend within
    `GRIDWORK_REFRESH_REUSE_GRACE_SECONDS` (a lost reply) gets the same new refresh token
    again; a reuse after that signs the user out everywhere. However often it is refreshed, a
    sign-in ends `GRIDWORK_REFRESH_FAMILY_DAYS` after the password was given."""
    now = clock.now()
    try:
        if grant_type == "password":
            if not username or not password:
                raise Invalid("username and password are required", loc=["body", "username"])
            client = request.client.host if request.client else None
            issued = await service.login(session, username, password, settings, now, client)
        else:
            if not refresh_token:
                raise Invalid("refresh_token is required", loc=["body", "refresh_token"])
            issued = await service.refresh(session, refresh_token, settings, now)
    except AppError:
        await session.commit()  # keep the failure count and any revocation
        raise
    await session.commit()
    return issued


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(data: LogoutIn, session: SessionDep, clock: ClockDep) -> None:
    """Signs out the session the refresh token belongs to: every refresh token rotated from
    the same sign-in is revoked, on this device only (other devices stay signed in). Needs no
    bearer token: the refresh token is the credential. An unknown, expired or already revoked
    token is answered 204 all the same. Access tokens already issued are not revoked: they
    expire after `GRIDWORK_ACCESS_TOKEN_MINUTES` (an admin's `revoke-tokens` ends them at once,
    on every device)."""
    await service.logout(session, data.refresh_token, clock.now())
    await session.commit()


@router.get("/users/me", response_model=UserOut)
async def me(user: CurrentUser) -> User:
    return user


async def _get_user(session: SessionDep, username: str) -> User:
    user = await session.scalar(select(User).where(service.username_is(username)))
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
