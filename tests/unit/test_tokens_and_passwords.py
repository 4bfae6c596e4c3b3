"""Access tokens, key rotation, refresh token format, password hashing and rules."""

from __future__ import annotations

import json
from datetime import timedelta

import jwt
import pytest

from medflow.auth.keys import KeySet, load_or_create, new_key_entry
from medflow.auth.passwords import Hasher, PasswordRules
from medflow.auth.principal import Principal
from medflow.auth.tokens import issue_access_token, split_refresh_token, verify_access_token
from medflow.errors import Problem
from medflow.ids import new_id, utcnow

WHO = Principal("01J00000000000000000000USR", "doctor", "01J00000000000000000000INS", None)


def _keys(*kids: str, active: str | None = None) -> KeySet:
    return KeySet.from_json(json.dumps({"active": active or kids[0], "keys": [new_key_entry(k) for k in kids]}))


def _refused(keys: KeySet, token: str, code: str, issuer: str = "medflow") -> None:
    with pytest.raises(Problem) as caught:
        verify_access_token(keys, token, issuer=issuer)
    assert caught.value.status == 401 and caught.value.code == code


def test_a_token_carries_user_role_institution_and_key_id():
    keys = _keys("k1")
    issued = issue_access_token(keys, WHO, issuer="medflow", now=utcnow(), ttl_s=60)
    assert jwt.get_unverified_header(issued.token)["kid"] == "k1"
    verified = verify_access_token(keys, issued.token, issuer="medflow")
    assert (verified.principal.user_id, verified.principal.role, verified.principal.institution_id) == \
           (WHO.user_id, "doctor", WHO.institution_id)
    assert verified.jti == issued.jti == verified.principal.token_id


def test_an_expired_token_is_refused():
    keys = _keys("k1")
    old = issue_access_token(keys, WHO, issuer="medflow", now=utcnow() - timedelta(minutes=20), ttl_s=60)
    _refused(keys, old.token, "token-expired")


def test_a_token_from_another_key_with_the_same_kid_is_refused():
    forged = issue_access_token(_keys("k1"), WHO, issuer="medflow", now=utcnow(), ttl_s=60)
    _refused(_keys("k1"), forged.token, "token-invalid")


def test_an_edited_token_is_refused():
    keys = _keys("k1")
    token = issue_access_token(keys, WHO, issuer="medflow", now=utcnow(), ttl_s=60).token
    header, payload, signature = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["role"] = "admin"
    edited = ".".join([header, jwt.utils.base64url_encode(json.dumps(claims).encode()).decode(), signature])
    _refused(keys, edited, "token-invalid")


@pytest.mark.parametrize("algorithm,key", [("HS256", "secret"), ("none", None)])
def test_tokens_signed_another_way_are_refused(algorithm, key):
    claims = {"sub": WHO.user_id, "role": "admin", "inst": WHO.institution_id, "jti": new_id(), "iss": "medflow",
              "aud": "medflow-api", "iat": int(utcnow().timestamp()), "exp": int(utcnow().timestamp()) + 60}
    token = jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "k1"})
    _refused(_keys("k1"), token, "token-invalid")


def test_wrong_issuer_is_refused():
    keys = _keys("k1")
    token = issue_access_token(keys, WHO, issuer="someone-else", now=utcnow(), ttl_s=60).token
    _refused(keys, token, "token-invalid")


def test_rotation_keeps_old_tokens_valid_until_their_key_is_dropped():
    old_set = _keys("2026-08")
    token = issue_access_token(old_set, WHO, issuer="medflow", now=utcnow(), ttl_s=60).token
    rotated = KeySet.from_json(json.dumps({"active": "2026-11", "keys": [
        new_key_entry("2026-11"),
        {"kid": "2026-08", "public_pem": _public_pem(old_set, "2026-08")}]}))
    assert verify_access_token(rotated, token, issuer="medflow").principal.user_id == WHO.user_id
    new_token = issue_access_token(rotated, WHO, issuer="medflow", now=utcnow(), ttl_s=60).token
    assert jwt.get_unverified_header(new_token)["kid"] == "2026-11"
    dropped = KeySet.from_json(json.dumps({"active": "2026-11", "keys": [new_key_entry("2026-11")]}))
    _refused(dropped, token, "token-invalid")


def _public_pem(keys: KeySet, kid: str) -> str:
    from cryptography.hazmat.primitives import serialization
    return keys.public_key(kid).public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_the_embedded_key_set_is_made_once_and_private(tmp_path):
    path = tmp_path / "keys.json"
    first = load_or_create(path)
    again = load_or_create(path)
    assert first.active == again.active and oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_key_set_whose_active_key_has_no_private_part_is_rejected():
    entry = new_key_entry("k1")
    with pytest.raises(ValueError):
        KeySet.from_json(json.dumps({"active": "k1", "keys": [{"kid": "k1", "public_pem": entry["public_pem"]}]}))


@pytest.mark.parametrize("token", ["", "nodot", "short.secretsecretsecretsecret", new_id() + ".x"])
def test_malformed_refresh_tokens_are_recognised(token):
    assert split_refresh_token(token) is None


def test_argon2id_hashes_verify_and_report_outdated_parameters():
    cheap = Hasher(1, 8192, 1)
    stored = cheap.hash("Correct-Horse-9")
    assert stored.startswith("$argon2id$")
    assert cheap.verify(stored, "Correct-Horse-9") and not cheap.verify(stored, "wrong")
    assert not cheap.needs_rehash(stored)
    assert Hasher(2, 16384, 1).needs_rehash(stored)
    assert not cheap.verify("not-a-hash", "x")


@pytest.mark.parametrize("password,complaint", [
    ("Sh0rt", "at least 10"), ("alllowercase1", "upper-case"), ("ALLUPPERCASE1", "lower-case"),
    ("NoDigitsHere", "digit"), ("Password123!", "too easy"), ("Medflow123!", "too easy"),
])
def test_password_rules_name_what_is_missing(password, complaint):
    problems = " ".join(PasswordRules().violations(password))
    assert complaint in problems


def test_a_password_containing_the_username_is_refused_and_never_echoed():
    with pytest.raises(Problem) as caught:
        PasswordRules().check("Zhang.Wei-2026x", "body.password", "zhang.wei")
    assert caught.value.status == 422 and "Zhang.Wei-2026x" not in json.dumps(caught.value.to_json())


def test_stricter_rules_require_a_symbol():
    assert PasswordRules(require_symbol=True).violations("Abcdefgh12") == ["must contain a symbol"]
    assert PasswordRules(require_symbol=True).violations("Abcdefgh1!") == []
