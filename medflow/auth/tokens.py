"""Access tokens (short-lived JWTs, EdDSA, key id in the header) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt

from medflow.auth.keys import KeySet
from medflow.auth.principal import Principal
from medflow.errors import Problem
from medflow.ids import new_id

AUDIENCE = "medflow-api"
ALGORITHM = "EdDSA"
LEEWAY_S = 5


@dataclass(frozen=True)
class AccessToken:
    token: str
    jti: str
    expires_at: datetime


@dataclass(frozen=True)
class VerifiedToken:
    principal: Principal
    jti: str
    issued_at: float
    expires_at: int


def token_problem(code: str, detail: str) -> Problem:
    return Problem(401, code, detail, headers={"WWW-Authenticate": f'Bearer error="invalid_token"'})


def issue_access_token(keys: KeySet, principal: Principal, *, issuer: str, now: datetime, ttl_s: int) -> AccessToken:
    """A signed token; ``pwc`` marks a session opened with a temporary password."""
    key = keys.signing_key()
    jti = new_id()
    expires = now + timedelta(seconds=ttl_s)
    # iat keeps milliseconds so a revocation at time T separates tokens issued just before and after it
    claims = {"iss": issuer, "aud": AUDIENCE, "sub": principal.user_id, "role": principal.role,
              "inst": principal.institution_id, "dept": principal.department_id, "jti": jti,
              "iat": round(now.timestamp(), 3), "nbf": int(now.timestamp()), "exp": int(expires.timestamp())}
    if principal.password_change_required:
        claims["pwc"] = True
    token = jwt.encode(claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})
    return AccessToken(token, jti, expires)


def verify_access_token(keys: KeySet, token: str, *, issuer: str) -> VerifiedToken:
    """The principal a token carries; a 401 Problem naming why it is refused."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise token_problem("token-invalid", "The access token is malformed.") from None
    if header.get("alg") != ALGORITHM:
        raise token_problem("token-invalid", "The access token is not signed the expected way.")
    public = keys.public_key(str(header.get("kid")))
    if public is None:
        raise token_problem("token-invalid", "The access token was signed with an unknown key.")
    try:
        claims = jwt.decode(token, public, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=issuer, leeway=LEEWAY_S,
                            options={"require": ["exp", "iat", "sub", "jti", "aud", "iss"]})
    except jwt.ExpiredSignatureError:
        raise token_problem("token-expired", "The access token has expired; refresh it.") from None
    except jwt.PyJWTError:
        raise token_problem("token-invalid", "The access token is not valid.") from None
    if claims.get("role") not in ("admin", "doctor", "patient") or not claims.get("inst"):
        raise token_problem("token-invalid", "The access token is not valid.")
    principal = Principal(claims["sub"], claims["role"], claims["inst"], claims.get("dept"),
                          token_id=claims["jti"], token_expires_at=int(claims["exp"]),
                          password_change_required=bool(claims.get("pwc")))
    return VerifiedToken(principal, claims["jti"], float(claims["iat"]), int(claims["exp"]))


# Refresh tokens: "<row id>.<secret>"; the database keeps only SHA-256 of the secret.

def new_refresh_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def compose_refresh_token(token_id: str, secret: str) -> str:
    return f"{token_id}.{secret}"


def split_refresh_token(token: str) -> tuple[str, str] | None:
    token_id, dot, secret = token.partition(".")
    if not dot or len(token_id) != 26 or not (20 <= len(secret) <= 128):
        return None
    return token_id, secret


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
