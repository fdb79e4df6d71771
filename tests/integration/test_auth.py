import asyncio
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from app.clock import FrozenClock
from app.config import Settings
from app.db import Database
from app.main import create_app
from tests.helpers import Api


@pytest.fixture
def settings(database: Database) -> Settings:
    return Settings(
        env="test", database_url=database.url, secret_key="another-test-secret-key-of-enough-length"
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me(api: Api, token: str) -> httpx.Response:
    return await api.client.get("/api/v1/users/me", headers=bearer(token))


async def test_password_grant_and_me(api: Api) -> None:
    response = await api.login("dispatcher")
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 15 * 60
    assert body["refresh_token"]

    caller = await me(api, body["access_token"])

    assert caller.status_code == 200
    assert caller.json()["username"] == "dispatcher"
    assert caller.json()["role"] == "dispatcher"
    assert caller.json()["org_unit_code"] == "GC01"
    assert "password" not in str(caller.json())


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic d29ya2VyOng="}]
)
async def test_missing_or_bad_token_is_401(api: Api, headers: dict[str, str]) -> None:
    response = await api.client.get("/api/v1/tickets", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"


async def test_wrong_password_and_unknown_user_are_alike(api: Api) -> None:
    wrong = await api.login("dispatcher", "not-the-password")
    unknown = await api.login("nobody", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


async def test_access_token_expires(api: Api, clock: FrozenClock) -> None:
    token = (await api.login("worker")).json()["access_token"]
    clock.advance(timedelta(minutes=14))
    assert (await me(api, token)).status_code == 200
    clock.advance(timedelta(minutes=2))
    assert (await me(api, token)).status_code == 401


async def test_token_signed_with_another_key_is_refused(
    api: Api, world: Database, clock: FrozenClock
) -> None:
    other = create_app(
        Settings(
            env="test", database_url=world.url, secret_key="a-different-secret-of-sufficient-size"
        ),
        database=world,
        clock=clock,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=other), base_url="http://other"
    ) as client:
        foreign = await Api(client).login("worker")
    assert (await me(api, foreign.json()["access_token"])).status_code == 401


async def refresh(api: Api, token: str) -> httpx.Response:
    return await api.client.post(
        "/api/v1/auth/token", data={"grant_type": "refresh_token", "refresh_token": token}
    )


async def test_refresh_rotates_and_reuse_signs_out_everywhere(api: Api, clock: FrozenClock) -> None:
    first = (await api.login("worker")).json()

    second = await refresh(api, first["refresh_token"])
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert (await me(api, second.json()["access_token"])).status_code == 200

    clock.advance(timedelta(seconds=30))  # a resend after a lost reply is still answered
    resent = await refresh(api, first["refresh_token"])
    assert resent.status_code == 200
    assert resent.json()["refresh_token"] == second.json()["refresh_token"]

    clock.advance(timedelta(seconds=31))  # past the grace: the old token was copied
    replay = await refresh(api, first["refresh_token"])
    assert replay.status_code == 401
    assert (await me(api, second.json()["access_token"])).status_code == 401
    assert (await refresh(api, second.json()["refresh_token"])).status_code == 401
    assert (await refresh(api, resent.json()["refresh_token"])).status_code == 401


async def test_concurrent_failures_cannot_slip_a_guess_past_the_lock(api: Api) -> None:
    guesses = [api.login("supervisor", f"guess-{i}") for i in range(30)]
    guesses.insert(20, api.login("supervisor"))

    responses = await asyncio.gather(*guesses)

    assert responses[20].status_code in (200, 401)
    locked = await api.login("supervisor")
    assert locked.status_code == 401  # locked: answered as a wrong password


async def test_admin_revokes_a_lost_phone(api: Api) -> None:
    phone = (await api.login("worker")).json()

    revoked = await api.post("/api/v1/users/worker/revoke-tokens", "admin")

    assert revoked.status_code == 204
    assert (await me(api, phone["access_token"])).status_code == 401
    assert (await refresh(api, phone["refresh_token"])).status_code == 401
    assert (await api.login("worker")).status_code == 200  # the password still works


async def test_disabled_user_is_signed_out(api: Api) -> None:
    token = (await api.login("handler")).json()["access_token"]

    response = await api.client.patch(
        "/api/v1/users/handler", json={"is_active": False}, headers=await api.headers("admin")
    )

    assert response.status_code == 200 and response.json()["is_active"] is False
    assert (await me(api, token)).status_code == 401
    assert (await api.login("handler")).status_code == 401


async def test_repeated_failures_lock_the_account(api: Api, clock: FrozenClock) -> None:
    for _ in range(9):
        assert (await api.login("worker", "guess-guess")).status_code == 401
    assert (await api.login("worker")).status_code == 200  # success resets the count

    for _ in range(10):
        assert (await api.login("worker", "guess-guess")).status_code == 401
    locked = await api.login("worker")  # the right password, but the account is locked
    assert locked.status_code == 401
    assert locked.json()["detail"] == (await api.login("worker", "guess-guess")).json()["detail"]
    assert (await api.login("dispatcher")).status_code == 200  # other accounts unaffected

    clock.advance(timedelta(minutes=16))
    assert (await api.login("worker")).status_code == 200


async def test_failures_outside_the_window_do_not_add_up(api: Api, clock: FrozenClock) -> None:
    for _ in range(9):
        await api.login("worker", "guess-guess")
    clock.advance(timedelta(minutes=16))
    for _ in range(9):
        await api.login("worker", "guess-guess")
    assert (await api.login("worker")).status_code == 200


async def test_only_admins_manage_users(api: Api) -> None:
    body = {
        "username": "newworker",
        "password": "long-enough-pw",
        "display_name": "新网格员",
        "role": "grid_worker",
        "org_unit_code": "GC02-1",
    }
    assert (await api.post("/api/v1/users", "dispatcher", body)).status_code == 403
    assert (await api.get("/api/v1/users", "supervisor")).status_code == 403

    created = await api.post("/api/v1/users", "admin", body)

    assert created.status_code == 201
    assert created.json()["org_unit_code"] == "GC02-1"
    assert (await api.login("newworker", "long-enough-pw")).status_code == 200
    assert (await api.post("/api/v1/users", "admin", body)).status_code == 409
    listed = await api.get("/api/v1/users?role=grid_worker&org_unit=GC", "admin")
    assert [u["username"] for u in listed.json()["items"]] == ["newworker", "worker"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"role": "grid_worker", "org_unit_code": "GC01"}, "org_unit_code"),
        ({"role": "handler", "org_unit_code": "NH"}, "department_code"),
        ({"role": "dispatcher", "org_unit_code": "GC01-1"}, "org_unit_code"),
        ({"role": "dispatcher", "org_unit_code": "NOPE"}, "org_unit_code"),
        (
            {"role": "supervisor", "org_unit_code": "NH", "department_code": "NH-CG"},
            "department_code",
        ),
        ({"role": "captain", "org_unit_code": "NH"}, "role"),
        ({"role": "dispatcher", "org_unit_code": "NH", "password": "short"}, "password"),
        ({"role": "dispatcher", "org_unit_code": "NH", "username": "a b"}, "username"),
        ({"role": "dispatcher", "org_unit_code": "NH", "username": "System"}, "username"),
    ],
)
async def test_user_validation(api: Api, change: dict[str, str], field: str) -> None:
    body = {"username": "someone", "password": "long-enough-pw", "display_name": "x", **change}
    response = await api.post("/api/v1/users", "admin", body)
    assert response.status_code == 422, response.text
    assert ["body", field] in [e["loc"][:2] for e in response.json()["errors"]]
    assert (await api.get("/api/v1/users/someone", "admin")).status_code == 404


async def test_bootstrap_admin_on_an_empty_database(empty_db: Database, clock: FrozenClock) -> None:
    app: FastAPI = create_app(
        Settings(
            env="test",
            database_url=empty_db.url,
            secret_key="k" * 40,
            bootstrap_admin="root:first-password",
        ),
        database=empty_db,
        clock=clock,
    )
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        async with client:
            response = await Api(client).login("root", "first-password")
            assert response.status_code == 200
            me_ = await client.get(
                "/api/v1/users/me", headers=bearer(response.json()["access_token"])
            )
            assert me_.json()["role"] == "admin"
    async with app.router.lifespan_context(app):  # a second start creates nobody
        pass


def test_production_refuses_the_default_secret() -> None:
    with pytest.raises(ValueError, match="GRIDWORK_SECRET_KEY"):
        Settings(env="production")
    assert Settings(env="production", secret_key="s" * 40).env == "production"
