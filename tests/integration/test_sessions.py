"""Issue 17, items 8, 9 and 15: signing out, refresh-token families, the resend grace, sign-in
throttles by client address, no username enumeration, the password policy, usernames unique
whatever their case, and the purge of expired refresh tokens."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

import app.auth.security as security
from app.auth import service
from app.auth.models import LoginThrottle, RefreshToken, User
from app.auth.passwords import password_problem
from app.clock import FrozenClock
from app.config import Settings
from app.db import Database, UTCDateTime, make_engine
from app.demo import DEMO_PASSWORD, USERS
from app.main import create_app
from tests.conftest import START, DatabaseFactory, migrate
from tests.helpers import Api, count

LOGOUT = "/api/v1/auth/logout"


async def refresh(api: Api, token: str) -> httpx.Response:
    return await api.client.post(
        "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": token}
    )


async def me(api: Api, token: str) -> httpx.Response:
    return await api.client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})


@asynccontextmanager
async def client_at(app: FastAPI, address: str) -> AsyncIterator[Api]:
    """The API as seen from a client at `address`."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gridwork.test") as client:
        yield Api(client)


# --- 8. Sessions ----------------------------------------------------------------------------


async def test_logout_revokes_that_sign_in_and_no_other(api: Api) -> None:
    phone = (await api.login("worker")).json()
    laptop = (await api.login("worker")).json()
    rotated = (await refresh(api, phone["refresh_token"])).json()

    out = await api.client.post(LOGOUT, json={"refresh_token": rotated["refresh_token"]})

    assert out.status_code == 204 and out.content == b""
    assert (await refresh(api, rotated["refresh_token"])).status_code == 401
    # the whole family: the token it was rotated from, though still within the resend grace
    assert (await refresh(api, phone["refresh_token"])).status_code == 401
    assert (await refresh(api, laptop["refresh_token"])).status_code == 200  # another sign-in
    assert (await me(api, rotated["access_token"])).status_code == 200  # runs its short life
    # signing out again, or with a token nobody knows, changes nothing and says nothing
    assert (
        await api.client.post(LOGOUT, json={"refresh_token": phone["refresh_token"]})
    ).status_code == 204
    assert (await api.client.post(LOGOUT, json={"refresh_token": "nonsense"})).status_code == 204
    assert (await api.client.post(LOGOUT, json={})).status_code == 422


async def test_logout_is_documented_in_openapi(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()

    operation = schema["paths"]["/api/v1/auth/logout"]["post"]

    assert "204" in operation["responses"]
    assert "family" in operation["description"] or "rotated" in operation["description"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    logout_in = schema["components"]["schemas"][body.rsplit("/", 1)[1]]
    assert logout_in["required"] == ["refresh_token"]


async def test_a_sign_in_ends_after_refresh_family_days(api: Api, clock: FrozenClock) -> None:
    token = (await api.login("worker")).json()["refresh_token"]
    for _ in range(4):  # days 20, 40, 60 and 80: each refresh well within a token's 30 days
        clock.advance(timedelta(days=20))
        response = await refresh(api, token)
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]

    clock.advance(timedelta(days=10))  # 90 days after the password was given

    ended = await refresh(api, token)
    assert ended.status_code == 401
    assert "sign in again" in ended.json()["detail"]
    assert (await api.login("worker")).status_code == 200


def test_session_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(env="test").refresh_family_days == 90
    assert Settings(env="test").login_max_failures_per_address == 50
    monkeypatch.setenv("GRIDWORK_REFRESH_FAMILY_DAYS", "7")
    monkeypatch.setenv("GRIDWORK_LOGIN_MAX_FAILURES_PER_ADDRESS", "12")
    settings = Settings(env="test")
    assert (settings.refresh_family_days, settings.login_max_failures_per_address) == (7, 12)


async def test_a_resend_within_the_grace_gets_the_same_successor(
    api: Api, world: Database, clock: FrozenClock
) -> None:
    first = (await api.login("worker")).json()
    second = (await refresh(api, first["refresh_token"])).json()

    clock.advance(timedelta(seconds=30))  # the reply was lost: the phone sends the old token
    resent = await refresh(api, first["refresh_token"])

    assert resent.status_code == 200
    assert resent.json()["refresh_token"] == second["refresh_token"]
    assert await count(world, RefreshToken) == 2  # one successor, not a second
    async with world.sessions() as session:
        hashes = (await session.scalars(select(RefreshToken.token_hash))).all()
    assert second["refresh_token"] not in hashes and first["refresh_token"] not in hashes
    assert (await refresh(api, second["refresh_token"])).status_code == 200


async def test_concurrent_refreshes_get_one_successor(api: Api, world: Database) -> None:
    first = (await api.login("worker")).json()

    answers = await asyncio.gather(*(refresh(api, first["refresh_token"]) for _ in range(4)))

    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert len({a.json()["refresh_token"] for a in answers}) == 1
    assert await count(world, RefreshToken) == 2


# --- 9. Sign-in ----------------------------------------------------------------------------


async def test_failures_from_one_address_are_throttled_in_every_process(
    world: Database, settings: Settings, clock: FrozenClock
) -> None:
    settings = settings.model_copy(update={"login_max_failures_per_address": 5})
    one = create_app(settings, database=world, clock=clock)
    two = create_app(settings, database=world, clock=clock)  # another API process
    async with (
        client_at(one, "203.0.113.7") as a,
        client_at(two, "203.0.113.7") as b,
        client_at(one, "198.51.100.1") as elsewhere,
    ):
        # one guess per account, so that no account is locked
        for i, username in enumerate(["worker", "dispatcher", "handler", "nobody", "supervisor"]):
            assert (await (a if i % 2 else b).login(username, "guess-guess")).status_code == 401

        refused = await a.login("admin")  # the right password

        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert "address" in refused.json()["detail"]
        assert (await b.login("admin")).status_code == 429
        assert (await elsewhere.login("admin")).status_code == 200
        clock.advance(timedelta(minutes=settings.login_lockout_minutes, seconds=1))
        assert (await a.login("admin")).status_code == 200


async def test_one_ipv6_host_counts_by_its_64(
    world: Database, settings: Settings, clock: FrozenClock
) -> None:
    settings = settings.model_copy(update={"login_max_failures_per_address": 2})
    app = create_app(settings, database=world, clock=clock)
    async with (
        client_at(app, "2001:db8:1:2::10") as a,
        client_at(app, "2001:db8:1:2:ffff::1") as b,
        client_at(app, "2001:db8:1:3::10") as neighbour,
    ):
        await a.login("worker", "guess-guess")
        await b.login("dispatcher", "guess-guess")
        assert (await a.login("admin")).status_code == 429
        assert (await neighbour.login("admin")).status_code == 200


def test_address_keys() -> None:
    assert service.address_key("203.0.113.7") == "203.0.113.7"
    assert service.address_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert service.address_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert service.address_key("testclient") == "testclient"
    assert service.address_key(None) is None


async def test_a_locked_account_answers_like_an_unknown_one(api: Api) -> None:
    for _ in range(10):
        await api.login("worker", "guess-guess")

    locked = await api.login("worker")  # the right password, but the account is locked
    unknown = await api.login("nobody-at-all", DEMO_PASSWORD)
    wrong = await api.login("dispatcher", "guess-guess")

    assert locked.status_code == unknown.status_code == wrong.status_code == 401
    assert locked.json() == unknown.json() == wrong.json()
    for response in (locked, unknown):
        assert "retry-after" not in response.headers
        assert response.headers["www-authenticate"] == "Bearer"


async def test_an_unknown_username_costs_the_same_password_check(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Timing: an unknown username is checked against a dummy hash of the same cost."""
    checked: list[str] = []
    hasher = security._hasher

    class Spy(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            checked.append(str(hash))
            return super().verify(hash, password)

    spy = Spy(
        time_cost=hasher.time_cost,
        memory_cost=hasher.memory_cost,
        parallelism=hasher.parallelism,
    )
    monkeypatch.setattr(security, "_hasher", spy)

    await api.login("worker", "guess-guess")
    await api.login("nobody-at-all", "guess-guess")

    assert len(checked) == 2
    known, unknown = (h.split("$")[3] for h in checked)  # $argon2id$v=19$m=..,t=..,p=..$
    assert known == unknown


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("nine-char", "at least 10 characters"),
        ("password123", "most common"),
        ("QWERTYUIOP", "most common"),
        ("1234567890", "most common"),
        ("woaini1314", "most common"),
        ("abcabcabcabc", "most common"),
        ("NewComer-77", "username"),
    ],
)
async def test_new_passwords_follow_the_policy(api: Api, password: str, message: str) -> None:
    body = {"username": "newcomer-77", "password": password, "display_name": "x", "role": "admin"}

    response = await api.post("/api/v1/users", "admin", body)

    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["loc"][:2] == ["body", "password"]
    assert message in error["msg"]


async def test_changed_passwords_follow_the_policy(api: Api) -> None:
    body = {"username": "fieldworker1", "password": DEMO_PASSWORD, "display_name": "x"}
    assert (await api.post("/api/v1/users", "admin", {**body, "role": "admin"})).status_code == 201
    headers = await api.headers("admin")

    for password, message in [("FieldWorker1", "username"), ("password1234", "most common")]:
        response = await api.client.patch(
            "/api/v1/users/fieldworker1", json={"password": password}, headers=headers
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"][:2] == ["body", "password"]
        assert message in response.json()["errors"][0]["msg"]

    changed = await api.client.patch(
        "/api/v1/users/fieldworker1", json={"password": "a-long-field-day"}, headers=headers
    )
    assert changed.status_code == 200
    assert (await api.login("fieldworker1", "a-long-field-day")).status_code == 200


def test_the_demo_password_meets_the_policy() -> None:
    assert len(DEMO_PASSWORD) >= 10
    assert all(password_problem(DEMO_PASSWORD, user[0]) is None for user in USERS)


# --- 15. Usernames whatever their case --------------------------------------------------------


async def test_usernames_are_unique_whatever_their_case(
    api: Api, world: Database, clock: FrozenClock
) -> None:
    body = {
        "username": "Worker",
        "password": "long-enough-pw",
        "display_name": "另一个网格员",
        "role": "grid_worker",
        "org_unit_code": "GC01-1",
    }

    taken = await api.post("/api/v1/users", "admin", body)

    assert taken.status_code == 409
    assert "worker" in taken.json()["detail"]
    # sign-in and look-ups ignore case; the user keeps the name it was created with
    signed_in = await api.login("WORKER")
    assert signed_in.status_code == 200
    assert (await me(api, signed_in.json()["access_token"])).json()["username"] == "worker"
    assert (await api.get("/api/v1/users/Worker", "admin")).json()["username"] == "worker"
    # the database refuses too (two admins creating at once)
    async with world.sessions() as session:
        existing = await session.scalar(select(User).where(User.username == "dispatcher"))
        assert existing is not None
        session.add(
            User(
                username="DISPATCHER",
                password_hash=existing.password_hash,
                display_name="x",
                role="dispatcher",
                org_unit_code=existing.org_unit_code,
                is_active=True,
                token_generation=0,
                failed_logins=0,
                created_at=clock.now(),
            )
        )
        with pytest.raises(IntegrityError):
            await session.commit()


# --- Expired refresh tokens are purged --------------------------------------------------------


async def test_expired_refresh_tokens_are_purged(
    api: Api, world: Database, clock: FrozenClock
) -> None:
    await api.login("worker")  # its refresh token expires in 30 days
    clock.advance(timedelta(days=20))
    recent = (await api.login("dispatcher")).json()["refresh_token"]
    clock.advance(timedelta(days=10))

    async with world.sessions() as session:
        purged = await service.purge_expired_refresh_tokens(session, clock.now())
        await session.commit()

    assert purged == 1
    assert await count(world, RefreshToken) == 1
    assert (await refresh(api, recent)).status_code == 200


async def test_stale_sign_in_throttles_are_purged(
    api: Api, world: Database, settings: Settings, clock: FrozenClock
) -> None:
    await api.login("worker", "guess-guess")
    async with world.sessions() as session:
        assert await service.purge_stale_login_throttles(session, settings, clock.now()) == 0
        clock.advance(timedelta(minutes=settings.login_failure_window_minutes, seconds=1))
        assert await service.purge_stale_login_throttles(session, settings, clock.now()) == 1
        await session.commit()
    assert await count(world, LoginThrottle) == 0


# --- The migration ----------------------------------------------------------------------------

_USERS = sa.table(
    "users",
    *(sa.column(c) for c in ("id", "username", "password_hash", "display_name", "role")),
    *(sa.column(c) for c in ("is_active", "token_generation", "failed_logins")),
    sa.column("created_at", UTCDateTime()),
)
_TOKENS = sa.table(
    "refresh_tokens",
    *(sa.column(c) for c in ("id", "user_id", "token_hash")),
    sa.column("issued_at", UTCDateTime()),
    sa.column("expires_at", UTCDateTime()),
)


def _user(id_: int, username: str) -> dict[str, object]:
    return {
        "id": id_,
        "username": username,
        "password_hash": "x",
        "display_name": username,
        "role": "admin",
        "is_active": True,
        "token_generation": 0,
        "failed_logins": 0,
        "created_at": START,
    }


async def test_migration_0012_gives_old_tokens_a_family_and_refuses_case_twins(
    databases: DatabaseFactory,
) -> None:
    url = await databases.create()
    engine = make_engine(url)
    try:
        await migrate(url, "0011")
        async with engine.begin() as conn:
            await conn.execute(sa.insert(_USERS), [_user(1, "root")])
            token = {"id": 7, "user_id": 1, "token_hash": "a" * 64, "issued_at": START}
            await conn.execute(sa.insert(_TOKENS), [{**token, "expires_at": START}])

        await migrate(url, "0012")

        async with engine.connect() as conn:
            family = (
                await conn.execute(
                    sa.select(
                        sa.column("family_id"), sa.column("family_started_at", UTCDateTime())
                    ).select_from(sa.table("refresh_tokens"))
                )
            ).one()
        assert tuple(family) == ("7", START)

        await migrate(url, "0011", down=True)
        async with engine.begin() as conn:
            await conn.execute(sa.insert(_USERS), [_user(2, "Root")])
        with pytest.raises(RuntimeError, match=r"unique whatever their case.*root"):
            await migrate(url, "0012")
    finally:
        await engine.dispose()
