"""Open311 clients and their API keys."""

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import NotFound
from app.open311.models import Open311Client


def _hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


async def register(
    session: AsyncSession, name: str, admin: str, now: datetime
) -> tuple[Open311Client, str]:
    """A new client and its API key, which is returned this once."""
    api_key = secrets.token_urlsafe(32)
    client = Open311Client(
        name=name, key_hash=_hash(api_key), key_prefix=api_key[:8], created_at=now, created_by=admin
    )
    session.add(client)
    await session.flush()
    return client, api_key


async def revoke(session: AsyncSession, client_id: int, now: datetime) -> None:
    client = await session.get(Open311Client, client_id)
    if client is None:
        raise NotFound(f"Open311 client {client_id} does not exist")
    client.revoked_at = client.revoked_at or now


async def lock_client_for_key(session: AsyncSession, api_key: str) -> Open311Client | None:
    """The active client holding `api_key`, if any, with its row locked until the transaction
    ends. The lock is a write, so that SQLite, which has no row locks, takes its write lock
    here too: a client's filings then run one after the other on both databases."""
    locked = await session.scalar(
        update(Open311Client)
        .where(Open311Client.key_hash == _hash(api_key), Open311Client.revoked_at.is_(None))
        .values(key_prefix=Open311Client.key_prefix)
        .returning(Open311Client.id)
    )
    return await session.get(Open311Client, locked) if locked is not None else None
