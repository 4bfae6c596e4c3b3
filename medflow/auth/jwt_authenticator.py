"""The authentication hook every function runs: Bearer JWT → Principal, or a 401."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Mapping

from medflow.auth.keys import KeySet
from medflow.auth.principal import Principal
from medflow.auth.revocation import Revocations
from medflow.auth.tokens import VerifiedToken, token_problem, verify_access_token


class JwtAuthenticator:
    """Verifies the signature once per token and remembers the result until the token
    expires (a bounded memo); revocation is checked on every request (see Revocations
    for how often that reaches the shared cache)."""

    MEMO_SIZE = 10_000

    def __init__(self, keys: KeySet, revocations: Revocations, issuer: str) -> None:
        self._keys, self._revocations, self._issuer = keys, revocations, issuer
        self._verified: OrderedDict[str, VerifiedToken] = OrderedDict()

    def _verify(self, token: str) -> VerifiedToken:
        known = self._verified.get(token)
        if known is not None and known.expires_at > time.time():
            self._verified.move_to_end(token)
            return known
        verified = verify_access_token(self._keys, token, issuer=self._issuer)
        self._verified[token] = verified
        if len(self._verified) > self.MEMO_SIZE:
            self._verified.popitem(last=False)
        return verified

    async def __call__(self, headers: Mapping[str, str]) -> Principal | None:
        header = headers.get("authorization")
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise token_problem("token-invalid", "Use an Authorization: Bearer <access token> header.")
        verified = self._verify(token.strip())
        if await self._revocations.is_revoked(verified.jti, verified.principal.user_id, verified.issued_at):
            raise token_problem("token-revoked", "The access token has been revoked; sign in again.")
        return verified.principal
