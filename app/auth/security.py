"""Password hashing (argon2), signed access tokens (JWT, HS256) and refresh tokens."""

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi.concurrency import run_in_threadpool

_hasher = PasswordHasher()
# Verified against when the username is unknown, so timing does not reveal which usernames
# exist: a hash of a random password, made by the hasher in use (same cost as real hashes).
_dummy: tuple[PasswordHasher, str] | None = None
ALGORITHM = "HS256"


def _dummy_hash() -> str:
    global _dummy
    if _dummy is None or _dummy[0] is not _hasher:
        _dummy = (_hasher, _hasher.hash(secrets.token_urlsafe(24)))
    return _dummy[1]


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


async def hash_password(password: str) -> str:
    return await run_in_threadpool(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _dummy_hash(), password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await run_in_threadpool(check)


@dataclass(frozen=True)
class AccessClaims:
    username: str
    generation: int
    role: str | None = None  # as issued: a hint for routing reads, never for permissions


def issue_access_token(
    secret: str,
    username: str,
    generation: int,
    now: datetime,
    lifetime: timedelta,
    role: str | None = None,
) -> str:
    payload: dict[str, Any] = {
        "sub": username,
        "gen": generation,
        "typ": "access",
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }
    if role is not None:
        payload["role"] = role
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


@dataclass(frozen=True)
class _Verified:
    claims: AccessClaims
    expires_at: float


# Far longer than any token this service signs.
MAX_TOKEN_LENGTH = 2048


class _NotSigned(Exception):
    pass


def _verify_signature(secret: str, token: str) -> _Verified | None:
    """What a token says, if this service signed it. Tokens it did sign are remembered: the
    same few come with every request, and decoding one costs more than the rest of the check."""
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        return _remembered_signature(secret, token)
    except _NotSigned:
        return None


@lru_cache(maxsize=4096)
def _remembered_signature(secret: str, token: str) -> _Verified:
    """Raises _NotSigned for a token this service did not sign (an exception is not cached)."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp", "gen"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise _NotSigned from exc
    if payload.get("typ") != "access":
        raise _NotSigned
    role = payload.get("role")
    claims = AccessClaims(
        username=str(payload["sub"]),
        generation=int(payload["gen"]),
        role=role if isinstance(role, str) else None,
    )
    return _Verified(claims, float(payload["exp"]))


def read_access_token(secret: str, token: str, now: datetime) -> AccessClaims | None:
    verified = _verify_signature(secret, token)
    # Expiry is checked against the service clock, not the host's, so tests can move time.
    if verified is None or verified.expires_at <= now.timestamp():
        return None
    return verified.claims


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def new_family_id() -> str:
    return secrets.token_hex(16)


def successor_refresh_token(secret: str, token: str) -> str:
    """The token that replaces `token` when it is rotated: derived from it with the secret key,
    so that a resend within the grace gets the same successor while only digests are stored."""
    mac = hmac.new(
        secret.encode(), b"gridwork refresh successor\x00" + token.encode(), hashlib.sha256
    )
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
