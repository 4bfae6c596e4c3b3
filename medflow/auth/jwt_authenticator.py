"""The authentication hook every function runs: Bearer JWT → Principal, or a 401."""

from __future__ import annotations

from typing import Mapping

from medflow.auth.keys import KeySet
from medflow.auth.principal import Principal
from medflow.auth.revocation import is_revoked
from medflow.auth.tokens import token_problem, verify_access_token
from medflow.cache.ports import Cache


class JwtAuthenticator:
    def __init__(self, keys: KeySet, cache: Cache, issuer: str) -> None:
        self._keys, self._cache, self._issuer = keys, cache, issuer

    async def __call__(self, headers: Mapping[str, str]) -> Principal | None:
        header = headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise token_problem("token-invalid", "Use an Authorization: Bearer <access token> header.")
        verified = verify_access_token(self._keys, token.strip(), issuer=self._issuer)
        if await is_revoked(self._cache, verified.jti, verified.principal.user_id, verified.issued_at):
            raise token_problem("token-revoked", "The access token has been revoked; sign in again.")
        return verified.principal
