"""Revoking access tokens before they expire, through the shared cache.

Two markers, each kept only as long as an access token can live:
- a token id on the deny list (logout);
- a user's "revoked before" instant (disabled, deleted, password changed or reset):
  every token of that user issued earlier is refused.
"""

from __future__ import annotations

import time

from medflow.cache.ports import Cache


def _deny_key(jti: str) -> str:
    return f"auth:deny:{jti}"


def _user_key(user_id: str) -> str:
    return f"auth:revoked-before:{user_id}"


async def deny_token(cache: Cache, jti: str, expires_at: float) -> None:
    ttl = max(1.0, expires_at - time.time() + 10)
    await cache.set(_deny_key(jti), b"1", ttl)


async def revoke_user_tokens(cache: Cache, user_id: str, access_ttl_s: int, at: float | None = None) -> None:
    instant = time.time() if at is None else at
    await cache.set(_user_key(user_id), f"{instant:.3f}".encode(), access_ttl_s + 60)


async def is_revoked(cache: Cache, jti: str, user_id: str, issued_at: float) -> bool:
    """Both markers in one round trip."""
    denied, before = await cache.get_many([_deny_key(jti), _user_key(user_id)])
    return denied is not None or (before is not None and issued_at < float(before))
