"""Bad input and abuse against the account functions, on the one-process server (embedded
and real): each is refused with the right status and problem+json code, and changes no row
(users, credentials, refresh tokens, login policies)."""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta

import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conftest import unique
from medflow.accounts.users import NewUser, create_user
from medflow.auth.principal import Principal
from medflow.auth.tokens import AUDIENCE, issue_access_token
from medflow.db.schema import credentials, users
from medflow.ids import utcnow
from test_accounts_flows import (ACCOUNTS, AUTH, Person, _own_login_budget, assert_problem, bearer,  # noqa: F401
                                 create_staff, department_id, institution_id, login, new_password, register, row_counts,
                                 seed_admin, sign_in)


def staff_body(**overrides) -> dict:
    return {"username": unique("dr."), "role": "doctor", "display_name": "Dr. Doe", "password": new_password(),
            **overrides}


async def credential(platform, user_id: str) -> dict:
    async with platform.services.db.connect() as conn:
        return dict((await conn.execute(sa.select(credentials).where(credentials.c.user_id == user_id))).mappings().one())


async def user_row(platform, user_id: str) -> dict:
    async with platform.services.db.connect() as conn:
        return dict((await conn.execute(sa.select(users).where(users.c.id == user_id))).mappings().one())


# --- tokens ----------------------------------------------------------------------------------

async def test_a_request_without_a_token_is_401_unauthenticated_before_its_body_is_read(platform):
    before = await row_counts(platform)
    for method, path, body in [("GET", f"{AUTH}/me", None), ("GET", f"{ACCOUNTS}/users", None),
                               ("POST", f"{ACCOUNTS}/users", staff_body()),
                               ("POST", f"{ACCOUNTS}/users", {"not": "even valid"}),
                               ("PUT", f"{ACCOUNTS}/login-policy", {"min_length": 8})]:
        response = await platform.request(method, path, json=body)
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await row_counts(platform) == before


async def test_malformed_forged_and_foreign_tokens_are_401_token_invalid_and_change_nothing(platform):
    admin = await seed_admin(platform)
    genuine = (await sign_in(platform, admin))["access_token"]
    claims = jwt.decode(genuine, options={"verify_signature": False})
    kid = platform.services.keys.active
    real_key = platform.services.keys.signing_key().private
    other_key = Ed25519PrivateKey.generate()
    head, payload, signature = genuine.split(".")
    escalated = base64.urlsafe_b64encode(json.dumps({**claims, "sub": unique("x")}).encode()).decode().rstrip("=")
    without_jti = {k: v for k, v in claims.items() if k != "jti"}

    headers = {
        "not a JWT": "Bearer not-a-jwt",
        "three garbage parts": "Bearer a.b.c",
        "empty bearer": "Bearer",
        "another scheme": f"Basic {genuine}",
        "alg none": "Bearer " + jwt.encode(claims, None, algorithm="none", headers={"kid": kid}),
        "HS256 with the active kid": "Bearer " + jwt.encode(claims, "k" * 32, algorithm="HS256", headers={"kid": kid}),
        "another Ed25519 key, same kid": "Bearer " + jwt.encode(claims, other_key, algorithm="EdDSA",
                                                               headers={"kid": kid}),
        "an unknown kid": "Bearer " + jwt.encode(claims, other_key, algorithm="EdDSA", headers={"kid": "rogue"}),
        "payload edited, signature kept": f"Bearer {head}.{escalated}.{signature}",
        "signature cut off": f"Bearer {head}.{payload}.",
        "wrong audience": "Bearer " + jwt.encode({**claims, "aud": "someone-else"}, real_key, algorithm="EdDSA",
                                                 headers={"kid": kid}),
        "wrong issuer": "Bearer " + jwt.encode({**claims, "iss": "evil"}, real_key, algorithm="EdDSA",
                                               headers={"kid": kid}),
        "unknown role": "Bearer " + jwt.encode({**claims, "role": "root"}, real_key, algorithm="EdDSA",
                                               headers={"kid": kid}),
        "no jti": "Bearer " + jwt.encode(without_jti, real_key, algorithm="EdDSA", headers={"kid": kid}),
    }
    assert claims["aud"] == AUDIENCE and (await platform.get(f"{AUTH}/me", headers=bearer(genuine))).status_code == 200
    before = await row_counts(platform)
    for name, value in headers.items():
        response = await platform.post(f"{ACCOUNTS}/users", headers={"Authorization": value}, json=staff_body())
        assert response.status_code == 401, name
        assert_problem(response, 401, "token-invalid")
        assert "invalid_token" in response.headers["WWW-Authenticate"], name
    assert await row_counts(platform) == before


async def test_an_expired_token_is_401_token_expired(platform):
    admin = await seed_admin(platform)
    services = platform.services
    expired = issue_access_token(services.keys, Principal(admin.id, "admin", await institution_id(platform)),
                                 issuer=services.settings.jwt_issuer, now=utcnow() - timedelta(hours=1), ttl_s=900)
    before = await row_counts(platform)
    assert_problem(await platform.post(f"{ACCOUNTS}/users", headers=bearer(expired.token), json=staff_body()),
                   401, "token-expired")
    assert await row_counts(platform) == before


async def test_a_token_replayed_after_logout_is_refused_by_every_function(platform):
    admin = await seed_admin(platform)
    session = await sign_in(platform, admin)
    assert (await platform.post(f"{AUTH}/logout", headers=bearer(session["access_token"]), json={})).status_code == 204
    before = await row_counts(platform)
    assert_problem(await platform.get(f"{AUTH}/me", headers=bearer(session["access_token"])), 401, "token-revoked")
    assert_problem(await platform.post(f"{ACCOUNTS}/users", headers=bearer(session["access_token"]), json=staff_body()),
                   401, "token-revoked")
    assert_problem(await platform.post(f"{AUTH}/logout", headers=bearer(session["access_token"]), json={}),
                   401, "token-revoked")
    assert await row_counts(platform) == before


async def test_forged_refresh_tokens_are_401_refresh_token_invalid(platform):
    admin = await seed_admin(platform)
    genuine = (await sign_in(platform, admin))["refresh_token"]
    token_id, _, secret = genuine.partition(".")
    before = await row_counts(platform)
    for forged in ("garbage", f"{token_id}.{'x' * len(secret)}", f"{'0' * 26}.{secret}", f"{token_id}."):
        assert_problem(await platform.post(f"{AUTH}/refresh", json={"refresh_token": forged}),
                       401, "refresh-token-invalid")
    assert await row_counts(platform) == before
    assert (await platform.post(f"{AUTH}/refresh", json={"refresh_token": genuine})).status_code == 200  # not burnt


# --- roles and institutions ------------------------------------------------------------------

async def test_patients_and_doctors_cannot_administer_accounts(platform):
    admin = await seed_admin(platform)
    admin_token = (await sign_in(platform, admin))["access_token"]
    doctor = await create_staff(platform, admin_token)
    username, password = unique("pat."), new_password()
    assert (await register(platform, username, password)).status_code == 201
    patient = Person("", username, password)
    before = await row_counts(platform)
    for person in (patient, doctor):
        token = (await sign_in(platform, person))["access_token"]
        for method, path, body in [("GET", f"{ACCOUNTS}/users", None),
                                   ("POST", f"{ACCOUNTS}/users", staff_body(role="admin")),
                                   ("POST", f"{ACCOUNTS}/users", {"invalid": True}),  # 403 before validation
                                   ("POST", f"{ACCOUNTS}/users/{admin.id}/disable", None),
                                   ("POST", f"{ACCOUNTS}/users/{admin.id}/password-reset", None),
                                   ("PUT", f"{ACCOUNTS}/login-policy",
                                    {"min_length": 8, "require_upper": False, "require_lower": False,
                                     "require_digit": False, "require_symbol": False, "max_failed_attempts": 100,
                                     "lockout_s": 30})]:
            assert_problem(await platform.request(method, path, json=body, headers=bearer(token)), 403, "forbidden")
    after = await row_counts(platform)
    assert after == {**before, "refresh_tokens": before["refresh_tokens"] + 2}  # just the two sign-ins
    assert (await user_row(platform, admin.id))["status"] == "active"
    assert (await platform.get(f"{AUTH}/me", headers=bearer(admin_token))).status_code == 200


async def test_an_admin_cannot_read_or_change_another_institutions_accounts(platform):
    mfgh_admin = await seed_admin(platform)
    token = (await sign_in(platform, mfgh_admin))["access_token"]
    rrh_password, rrh_username = new_password(), unique("dr.")
    rrh_doctor = await create_user(platform.services.db, platform.services.hasher, await institution_id(platform, "RRH"),
                                   NewUser(username=rrh_username, role="doctor", display_name="Dr. River",
                                           password=rrh_password))
    rrh_person = Person(rrh_doctor.id, rrh_username, rrh_password, "RRH")
    rrh_session = await sign_in(platform, rrh_person)
    row_before, counts_before = await user_row(platform, rrh_doctor.id), await row_counts(platform)
    hash_before = (await credential(platform, rrh_doctor.id))["password_hash"]

    for method, path, body in [("GET", f"/users/{rrh_doctor.id}", None),
                               ("POST", f"/users/{rrh_doctor.id}/disable", None),
                               ("POST", f"/users/{rrh_doctor.id}/enable", None),
                               ("POST", f"/users/{rrh_doctor.id}/password-reset", None),
                               ("PUT", f"/users/{rrh_doctor.id}/assignment",
                                {"department_id": await department_id(platform, "CARD"), "role": "admin"}),
                               ("PUT", f"/users/{rrh_doctor.id}/assignment", {"department_id": None, "role": "admin"}),
                               ("DELETE", f"/users/{rrh_doctor.id}", None)]:
        response = await platform.request(method, ACCOUNTS + path, json=body, headers=bearer(token))
        assert response.status_code == 404, (method, path, response.text)
        assert_problem(response, 404, "not-found")

    listed = (await platform.get(f"{ACCOUNTS}/users", headers=bearer(token))).json()["items"]
    assert rrh_doctor.id not in [u["id"] for u in listed]
    assert await user_row(platform, rrh_doctor.id) == row_before
    assert (await credential(platform, rrh_doctor.id))["password_hash"] == hash_before
    assert await row_counts(platform) == counts_before
    assert (await platform.get(f"{AUTH}/me", headers=bearer(rrh_session["access_token"]))).status_code == 200
    assert (await login(platform, rrh_person)).status_code == 200


async def test_a_department_of_another_institution_is_refused_with_422(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    doctor = await create_staff(platform, token, department="CARD")
    foreign = await department_id(platform, "RAD", code="RRH")
    row_before, counts_before = await user_row(platform, doctor.id), await row_counts(platform)

    created = await platform.post(f"{ACCOUNTS}/users", headers=bearer(token), json=staff_body(department_id=foreign))
    body = assert_problem(created, 422, "validation-failed")
    assert [e["loc"] for e in body["errors"]] == ["body.department_id"]
    assigned = await platform.put(f"{ACCOUNTS}/users/{doctor.id}/assignment", headers=bearer(token),
                                  json={"department_id": foreign, "role": "doctor"})
    body = assert_problem(assigned, 422, "validation-failed")
    assert [e["loc"] for e in body["errors"]] == ["body.department_id"]

    assert await user_row(platform, doctor.id) == row_before
    assert await row_counts(platform) == counts_before


async def test_an_admin_cannot_disable_delete_or_reassign_their_own_account(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    row_before = await user_row(platform, admin.id)
    for method, path, body in [("POST", "/disable", None), ("DELETE", "", None),
                               ("PUT", "/assignment", {"department_id": None, "role": "patient"})]:
        response = await platform.request(method, f"{ACCOUNTS}/users/{admin.id}{path}", json=body, headers=bearer(token))
        assert_problem(response, 409, "not-on-yourself")
    assert await user_row(platform, admin.id) == row_before
    assert (await platform.get(f"{AUTH}/me", headers=bearer(token))).status_code == 200


# --- sign-in abuse ---------------------------------------------------------------------------

async def test_a_disabled_account_gets_no_tokens_and_a_wrong_password_does_not_reveal_it(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    doctor = await create_staff(platform, token)
    session = await sign_in(platform, doctor)
    assert (await platform.post(f"{ACCOUNTS}/users/{doctor.id}/disable", headers=bearer(token))).status_code == 200
    before = await row_counts(platform)

    assert_problem(await login(platform, doctor, "Wrong-password-1"), 401, "invalid-credentials")
    assert_problem(await login(platform, doctor), 403, "account-disabled")
    assert_problem(await platform.post(f"{AUTH}/refresh", json={"refresh_token": session["refresh_token"]}),
                   401, "refresh-token-revoked")
    assert_problem(await platform.get(f"{AUTH}/me", headers=bearer(session["access_token"])), 401, "token-revoked")
    assert await row_counts(platform) == before


async def test_brute_force_locks_the_account_even_against_the_right_password(platform):
    admin = await seed_admin(platform)  # default policy: 5 failures lock for 900 s
    before = await row_counts(platform)
    for attempt in range(5):
        assert_problem(await login(platform, admin, f"Wrong-password-{attempt}"), 401, "invalid-credentials")
    locked = await login(platform, admin)
    assert_problem(locked, 429, "account-locked")
    assert 850 <= int(locked.headers["Retry-After"]) <= 900
    assert_problem(await login(platform, admin, "Wrong-password-9"), 429, "account-locked")
    assert await row_counts(platform) == before  # no tokens were issued
    assert (await credential(platform, admin.id))["locked_until"] is not None


async def test_once_the_lock_expires_the_right_password_works_and_the_failure_count_restarts(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    policy = (await platform.get(f"{ACCOUNTS}/login-policy", headers=bearer(token))).json()
    assert (await platform.put(f"{ACCOUNTS}/login-policy", headers=bearer(token),
                               json={**policy, "max_failed_attempts": 3, "lockout_s": 30})).status_code == 200
    doctor = await create_staff(platform, token)
    for _ in range(3):
        assert_problem(await login(platform, doctor, "Wrong-password-1"), 401, "invalid-credentials")
    locked = await login(platform, doctor)
    assert_problem(locked, 429, "account-locked")
    assert 1 <= int(locked.headers["Retry-After"]) <= 30

    async with platform.services.db.transaction() as conn:  # thirty seconds pass
        await conn.execute(credentials.update().where(credentials.c.user_id == doctor.id)
                           .values(locked_until=utcnow() - timedelta(seconds=1)))
    assert (await login(platform, doctor)).status_code == 200
    state = await credential(platform, doctor.id)
    assert state["failed_attempts"] == 0 and state["locked_until"] is None
    assert_problem(await login(platform, doctor, "Wrong-password-1"), 401, "invalid-credentials")
    assert (await credential(platform, doctor.id))["failed_attempts"] == 1  # counting starts afresh


async def test_the_eleventh_sign_in_of_one_account_within_a_minute_is_rate_limited(platform):
    admin = await seed_admin(platform)
    other = await seed_admin(platform)
    for _ in range(10):  # settings.login_rate_per_account
        assert (await login(platform, admin)).status_code == 200
    before = await row_counts(platform)
    limited = await login(platform, admin)  # the right password
    assert_problem(limited, 429, "rate-limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert await row_counts(platform) == before
    assert (await login(platform, other)).status_code == 200  # another account from the same address is fine


async def test_the_thirty_first_sign_in_from_one_address_within_a_minute_is_rate_limited(platform):
    admin = await seed_admin(platform)
    for _ in range(30):  # settings.login_rate_per_address, each attempt a different account
        assert_problem(await login(platform, Person("", unique("nobody."), new_password())), 401, "invalid-credentials")
    before = await row_counts(platform)
    limited = await login(platform, admin)  # an account never tried before, with its right password
    assert_problem(limited, 429, "rate-limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert await row_counts(platform) == before


# --- bad input -------------------------------------------------------------------------------

async def test_weak_passwords_are_refused_without_being_echoed(platform):
    before = await row_counts(platform)
    username = unique("pat.")
    for weak in ("Short1a", "alllowercase123", "NoDigitsAtAllHere", "Password123!", f"X1{username}Y"):
        response = await register(platform, username, weak)
        body = assert_problem(response, 422, "validation-failed")
        assert [(e["loc"], e["type"]) for e in body["errors"]] == [("body.password", "weak_password")], weak
        assert weak not in response.text
    assert await row_counts(platform) == before

    admin = await seed_admin(platform)
    session = await sign_in(platform, admin)
    for weak, kind in (("Short1a", "weak_password"), ("Password123!", "weak_password"),
                       (admin.password, "same_password")):
        response = await platform.post(f"{AUTH}/password", headers=bearer(session["access_token"]),
                                       json={"current_password": admin.password, "new_password": weak})
        body = assert_problem(response, 422, "validation-failed")
        assert [(e["loc"], e["type"]) for e in body["errors"]] == [("body.new_password", kind)], weak
        assert weak not in response.text and admin.password not in response.text
    assert (await login(platform, admin)).status_code == 200  # the password did not change
    assert (await platform.get(f"{AUTH}/me", headers=bearer(session["access_token"]))).status_code == 200


async def test_registering_a_taken_username_is_409_and_keeps_one_account(platform):
    username = unique("pat.")
    assert (await register(platform, username)).status_code == 201
    before = await row_counts(platform)
    for variant in (username, username.upper(), f"  {username} "):
        assert_problem(await register(platform, variant), 409, "username-taken")
    assert await row_counts(platform) == before
    async with platform.services.db.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(users)
                                   .where(users.c.username == username))).scalar_one() == 1
    assert (await register(platform, username, code="RRH")).status_code == 201  # another institution's namespace


async def test_registering_in_an_unknown_institution_is_422(platform):
    before = await row_counts(platform)
    body = assert_problem(await register(platform, code="NOPE"), 422, "validation-failed")
    assert [e["loc"] for e in body["errors"]] == ["body.institution_code"]
    assert await row_counts(platform) == before


async def test_unknown_fields_and_wrong_types_are_422_and_change_nothing(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    good = {"institution_code": "MFGH", "username": unique("pat."), "password": new_password(), "display_name": "Pat"}
    before = await row_counts(platform)
    cases = [
        (f"{AUTH}/register", {**good, "role": "admin"}, None, "body.role"),  # no self-made administrators
        (f"{AUTH}/register", {**good, "username": 12345}, None, "body.username"),
        (f"{AUTH}/register", {**good, "password": ["a", "list"]}, None, "body.password"),
        (f"{AUTH}/register", {k: v for k, v in good.items() if k != "display_name"}, None, "body.display_name"),
        (f"{AUTH}/register", {**good, "email": "not-an-email"}, None, "body.email"),
        (f"{AUTH}/register", {**good, "username": "../etc"}, None, "body.username"),
        (f"{AUTH}/login", {"institution_code": "MFGH", "username": admin.username, "password": 12345}, None,
         "body.password"),
        (f"{ACCOUNTS}/users", staff_body(role="patient"), token, "body.role"),
        (f"{ACCOUNTS}/users", staff_body(department_id="not-an-id"), token, "body.department_id"),
        (f"{ACCOUNTS}/users", staff_body(status="disabled"), token, "body.status"),
    ]
    for path, body, auth, loc in cases:
        response = await platform.post(path, json=body, headers=bearer(auth) if auth else {})
        problem = assert_problem(response, 422, "validation-failed")
        assert loc in [e["loc"] for e in problem["errors"]], (path, loc, problem)
    policy = await platform.put(f"{ACCOUNTS}/login-policy", headers=bearer(token),
                                json={"min_length": 4, "require_upper": "sometimes", "require_lower": True,
                                      "require_digit": True, "require_symbol": False, "max_failed_attempts": 0,
                                      "lockout_s": 30})
    locs = {e["loc"] for e in assert_problem(policy, 422, "validation-failed")["errors"]}
    assert {"body.min_length", "body.require_upper", "body.max_failed_attempts"} <= locs
    query = await platform.get(f"{ACCOUNTS}/users", headers=bearer(token), params={"limit": 0, "role": "root"})
    assert {e["loc"] for e in assert_problem(query, 422, "validation-failed")["errors"]} == {"query.limit", "query.role"}
    assert_problem(await platform.get(f"{ACCOUNTS}/users", headers=bearer(token), params={"cursor": "tampered!"}),
                   400, "invalid-cursor")
    assert await row_counts(platform) == before


async def test_oversized_non_json_and_malformed_bodies_are_refused_and_change_nothing(platform):
    before = await row_counts(platform)
    huge = {"institution_code": "MFGH", "username": unique("pat."), "password": new_password(),
            "display_name": "x" * (1_100_000)}
    assert_problem(await platform.post(f"{AUTH}/register", json=huge), 413, "payload-too-large")
    assert_problem(await platform.post(f"{AUTH}/register", content=b'{"username": ', headers={
        "content-type": "application/json"}), 400, "malformed-json")
    assert_problem(await platform.post(f"{AUTH}/register", content=b"username=a&password=b", headers={
        "content-type": "application/x-www-form-urlencoded"}), 415, "unsupported-media-type")
    assert await row_counts(platform) == before


async def test_no_password_or_token_reaches_the_logs(platform, caplog):
    caplog.set_level(logging.INFO, logger="medflow")
    medflow = logging.getLogger("medflow")
    attached = not medflow.propagate  # the functions' JSON logging stops propagation to the root
    if attached:
        medflow.addHandler(caplog.handler)
    try:
        admin = await seed_admin(platform)
        wrong = "Wrong-" + new_password()
        assert_problem(await login(platform, admin, wrong), 401, "invalid-credentials")
        assert_problem(await login(platform, Person("", unique("nobody."), wrong)), 401, "invalid-credentials")
        session = await sign_in(platform, admin)
        rotated = (await platform.post(f"{AUTH}/refresh", json={"refresh_token": session["refresh_token"]})).json()
        assert_problem(await platform.post(f"{AUTH}/refresh", json={"refresh_token": session["refresh_token"]}),
                       401, "refresh-token-reused")
        forged = session["refresh_token"][:27] + "A" * 43
        assert_problem(await platform.post(f"{AUTH}/refresh", json={"refresh_token": forged}), 401,
                       "refresh-token-invalid")
        assert_problem(await platform.get(f"{AUTH}/me", headers=bearer(session["access_token"])), 401, "token-revoked")
        if platform.kind == "embedded":
            await platform.services.bus.wait_idle()
    finally:
        if attached:
            medflow.removeHandler(caplog.handler)

    logged = " ".join(json.dumps(r.__dict__, default=str, ensure_ascii=False) for r in caplog.records)
    codes = [getattr(r, "code", None) for r in caplog.records if r.name == "medflow.http"]
    assert codes.count("invalid-credentials") == 2 and "refresh-token-reused" in codes  # the failures were logged
    secrets_ = [admin.password, wrong, session["access_token"], session["refresh_token"], rotated["access_token"],
                rotated["refresh_token"], forged, session["refresh_token"].partition(".")[2]]
    for secret in secrets_:
        assert secret not in logged
    assert session["access_token"].split(".")[2] not in logged  # not even the signature
