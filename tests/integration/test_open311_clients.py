"""Open311 clients: registered and revoked by admins, keys shown once and stored hashed."""

from sqlalchemy import select

from app.db import Database
from app.open311 import clients
from app.open311.models import Open311Client
from tests.helpers import Api


async def test_register_list_and_revoke(api: Api, world: Database) -> None:
    created = await api.post("/api/v1/open311/clients", "admin", {"name": "南海随手拍"})
    assert created.status_code == 201, created.text
    client = created.json()
    key = client["api_key"]
    assert len(key) >= 40

    async with world.sessions() as session:
        stored = await session.scalar(select(Open311Client))
        assert stored is not None and key not in stored.key_hash and len(stored.key_hash) == 64
        assert (await clients.lock_client_for_key(session, key)) is not None
        assert (await clients.lock_client_for_key(session, key + "x")) is None

    listed = (await api.get("/api/v1/open311/clients", "admin")).json()
    assert [(c["name"], c["key_prefix"], c["revoked_at"]) for c in listed] == [
        ("南海随手拍", key[:8], None)
    ]
    assert "api_key" not in listed[0]

    for _ in range(2):  # revoking again changes nothing
        revoked = await api.client.delete(
            f"/api/v1/open311/clients/{client['id']}", headers=await api.headers("admin")
        )
        assert revoked.status_code == 204
    async with world.sessions() as session:
        assert (await clients.lock_client_for_key(session, key)) is None


async def test_only_admins_and_valid_input(api: Api) -> None:
    assert (
        await api.post("/api/v1/open311/clients", "supervisor", {"name": "x"})
    ).status_code == 403
    assert (await api.post("/api/v1/open311/clients", "admin", {"name": ""})).status_code == 422
    assert (await api.post("/api/v1/open311/clients", "admin", {})).status_code == 422
    missing = await api.client.delete(
        "/api/v1/open311/clients/999", headers=await api.headers("admin")
    )
    assert missing.status_code == 404
