"""Every account flow end to end over HTTP, on the one-process server (embedded and real):
sign-up, sign-in, your own account, refresh rotation, sign-out, password change, and what
an institution's administrator does to accounts and to the login policy."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from conftest import unique
from medflow.accounts.users import NewUser, create_user
from medflow.auth.passwords import Hasher
from medflow.db.schema import audit_log, credentials, departments, institutions, login_policies, refresh_tokens, users

PROBLEM = "application/problem+json"
ADDRESS = "203.0.113.7"  # the platform fixture's client address
AUTH, ACCOUNTS = "/api/auth", "/api/accounts"


# --- helpers ------------------------------------------------------------------------------

@dataclass
class Person:
    id: str
    username: str
    password: str
    institution_code: str = "MFGH"


def new_password() -> str:
    """Meets the default policy (10+, upper, lower, digit) and is unguessable."""
    return f"Pw-{secrets.token_hex(6)}-Zz9"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status and body["code"] == code, body
    return body


@pytest.fixture(autouse=True)
async def _own_login_budget(platform):
    """The real variant's Redis is shared by every test: start and leave this client address
    with a fresh per-address login budget so one test's sign-ins never throttle another's."""
    key = f"login:address:{ADDRESS}"
    await platform.services.cache.rate_limiter.reset(key)
    yield
    await platform.services.cache.rate_limiter.reset(key)


async def institution_id(platform, code: str = "MFGH") -> str:
    async with platform.services.db.connect() as conn:
        return (await conn.execute(sa.select(institutions.c.id).where(institutions.c.code == code))).scalar_one()


async def department_id(platform, dept: str, code: str = "MFGH") -> str:
    query = (sa.select(departments.c.id).select_from(departments.join(institutions))
             .where(institutions.c.code == code, departments.c.code == dept))
    async with platform.services.db.connect() as conn:
        return (await conn.execute(query)).scalar_one()


async def seed_admin(platform, code: str = "MFGH") -> Person:
    """The first administrator of an institution (made directly: there is no API for it)."""
    password, username = new_password(), unique("admin.")
    user = await create_user(platform.services.db, platform.services.hasher, await institution_id(platform, code),
                             NewUser(username=username, role="admin", display_name="Ada Admin", password=password))
    return Person(user.id, username, password, code)


async def login(platform, person: Person, password: str | None = None):
    return await platform.post(f"{AUTH}/login", json={"institution_code": person.institution_code,
                                                      "username": person.username,
                                                      "password": person.password if password is None else password})


async def sign_in(platform, person: Person) -> dict:
    response = await login(platform, person)
    assert response.status_code == 200, response.text
    return response.json()


async def register(platform, username: str | None = None, password: str | None = None, code: str = "MFGH", **extra):
    body = {"institution_code": code, "username": username or unique("pat."),
            "password": password or new_password(), "display_name": "Pat Patient", **extra}
    return await platform.post(f"{AUTH}/register", json=body)


async def create_staff(platform, admin_token: str, role: str = "doctor", department: str | None = None,
                       must_change_password: bool = False) -> Person:
    password, username = new_password(), unique("dr.")
    body = {"username": username, "role": role, "display_name": "Dr. Doe", "password": password,
            "must_change_password": must_change_password}
    if department:
        body["department_id"] = await department_id(platform, department)
    response = await platform.post(f"{ACCOUNTS}/users", json=body, headers=bearer(admin_token))
    assert response.status_code == 201, response.text
    return Person(response.json()["id"], username, password)


async def row_counts(platform) -> dict[str, int]:
    async with platform.services.db.connect() as conn:
        return {t.name: (await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar_one()
                for t in (users, credentials, refresh_tokens, login_policies)}


async def stored_hash(platform, user_id: str) -> str:
    async with platform.services.db.connect() as conn:
        return (await conn.execute(sa.select(credentials.c.password_hash)
                                   .where(credentials.c.user_id == user_id))).scalar_one()


async def audit_rows(platform, action: str, resource_id: str, timeout_s: float = 30.0) -> list[dict]:
    """The audit rows for an action on a resource, once the audit sink has written them
    (in-process bus: wait for it to drain; Kafka: poll the table until a deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if platform.kind == "embedded":
            await platform.services.bus.wait_idle()
        async with platform.services.db.connect() as conn:
            rows = (await conn.execute(sa.select(audit_log).where(audit_log.c.action == action,
                                                                  audit_log.c.resource_id == resource_id))).mappings().all()
        if rows or time.monotonic() > deadline:
            return [dict(r) for r in rows]
        await asyncio.sleep(0.2)


# --- sign-up, sign-in, your own account ------------------------------------------------------

async def test_a_patient_registers_signs_in_and_sees_their_own_account(platform):
    username, password = unique("pat."), new_password()
    created = await register(platform, username, password, email="pat@example.org")
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["username"] == username and account["role"] == "patient" and account["status"] == "active"
    assert account["institution_id"] == await institution_id(platform)
    assert password not in created.text

    signed_in = await login(platform, Person(account["id"], username, password))
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    assert tokens["token_type"] == "Bearer" and tokens["role"] == "patient" and tokens["user_id"] == account["id"]
    assert tokens["access_token"] and tokens["refresh_token"] and tokens["password_change_required"] is False

    me = await platform.get(f"{AUTH}/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == account["id"] and me.json()["role"] == "patient"
    assert me.json()["email"] == "pat@example.org"

    # usernames and institution codes are not case-sensitive
    typed = await login(platform, Person(account["id"], username.upper(), password, "mfgh"))
    assert typed.status_code == 200, typed.text
    assert typed.json()["user_id"] == account["id"]


async def test_editing_your_profile_bumps_its_version_and_a_stale_version_is_refused(platform):
    username, password = unique("pat."), new_password()
    account = (await register(platform, username, password)).json()
    token = (await sign_in(platform, Person(account["id"], username, password)))["access_token"]

    edited = await platform.patch(f"{AUTH}/me", headers=bearer(token), json={
        "display_name": "Pat Renamed", "phone": "+44 20 7946 0000", "profile": {"language": "zh"}, "version": 1})
    assert edited.status_code == 200, edited.text
    assert edited.json()["display_name"] == "Pat Renamed" and edited.json()["profile"] == {"language": "zh"}
    assert edited.json()["version"] == 2

    stale = await platform.patch(f"{AUTH}/me", headers=bearer(token), json={"display_name": "Lost Update", "version": 1})
    assert_problem(stale, 409, "version-conflict")
    me = (await platform.get(f"{AUTH}/me", headers=bearer(token))).json()
    assert me["display_name"] == "Pat Renamed" and me["version"] == 2

    role_change = await platform.patch(f"{AUTH}/me", headers=bearer(token), json={"role": "admin"})
    assert_problem(role_change, 422, "validation-failed")
    assert (await platform.get(f"{AUTH}/me", headers=bearer(token))).json()["role"] == "patient"


# --- sessions: refresh, logout, password change ----------------------------------------------

async def test_refresh_rotates_and_a_reused_refresh_token_ends_the_whole_session(platform):
    admin = await seed_admin(platform)
    first = await sign_in(platform, admin)

    rotated = await platform.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert (await platform.get(f"{AUTH}/me", headers=bearer(second["access_token"]))).status_code == 200
    third = await platform.post(f"{AUTH}/refresh", json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200, third.text  # the new refresh token works
    latest = third.json()

    reused = await platform.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]})
    assert_problem(reused, 401, "refresh-token-reused")
    # the whole family is revoked: the newest refresh token too ...
    assert_problem(await platform.post(f"{AUTH}/refresh", json={"refresh_token": latest["refresh_token"]}),
                   401, "refresh-token-revoked")
    # ... and every access token of the user issued so far
    for token in (first["access_token"], second["access_token"], latest["access_token"]):
        assert_problem(await platform.get(f"{AUTH}/me", headers=bearer(token)), 401, "token-revoked")
    # signing in again starts a new, working session
    again = await sign_in(platform, admin)
    assert (await platform.get(f"{AUTH}/me", headers=bearer(again["access_token"]))).status_code == 200
    async with platform.services.db.connect() as conn:
        revoked = (await conn.execute(sa.select(refresh_tokens.c.revoked_reason).where(
            refresh_tokens.c.family_id.in_(sa.select(refresh_tokens.c.family_id).where(
                refresh_tokens.c.user_id == admin.id, refresh_tokens.c.revoked_at.is_not(None)))))).scalars().all()
    assert sorted(revoked) == ["reuse", "reuse", "reuse"]


async def test_logout_ends_this_session_only(platform):
    admin = await seed_admin(platform)
    session, other = await sign_in(platform, admin), await sign_in(platform, admin)

    out = await platform.post(f"{AUTH}/logout", headers=bearer(session["access_token"]),
                              json={"refresh_token": session["refresh_token"]})
    assert out.status_code == 204

    assert_problem(await platform.get(f"{AUTH}/me", headers=bearer(session["access_token"])), 401, "token-revoked")
    assert_problem(await platform.post(f"{AUTH}/refresh", json={"refresh_token": session["refresh_token"]}),
                   401, "refresh-token-revoked")
    assert (await platform.get(f"{AUTH}/me", headers=bearer(other["access_token"]))).status_code == 200
    assert (await platform.post(f"{AUTH}/refresh", json={"refresh_token": other["refresh_token"]})).status_code == 200


async def test_changing_your_password_ends_every_session_and_only_the_new_password_works(platform):
    admin = await seed_admin(platform)
    admin_token = (await sign_in(platform, admin))["access_token"]
    doctor = await create_staff(platform, admin_token, department="CARD", must_change_password=True)
    first = await sign_in(platform, doctor)
    assert first["password_change_required"] is True

    wrong = await platform.post(f"{AUTH}/password", headers=bearer(first["access_token"]),
                                json={"current_password": "Not-the-1-password", "new_password": new_password()})
    assert_problem(wrong, 403, "wrong-password")

    new = new_password()
    changed = await platform.post(f"{AUTH}/password", headers=bearer(first["access_token"]),
                                  json={"current_password": doctor.password, "new_password": new})
    assert changed.status_code == 204, changed.text

    assert_problem(await login(platform, doctor), 401, "invalid-credentials")
    assert_problem(await platform.get(f"{AUTH}/me", headers=bearer(first["access_token"])), 401, "token-revoked")
    assert_problem(await platform.post(f"{AUTH}/refresh", json={"refresh_token": first["refresh_token"]}),
                   401, "refresh-token-revoked")
    after = await login(platform, doctor, new)
    assert after.status_code == 200, after.text
    assert after.json()["password_change_required"] is False
    assert (await platform.get(f"{AUTH}/me", headers=bearer(after.json()["access_token"]))).status_code == 200


# --- administration --------------------------------------------------------------------------

async def test_an_admin_creates_a_doctor_in_a_department_who_must_change_the_password(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    cardiology = await department_id(platform, "CARD")
    password, username = new_password(), unique("dr.")
    created = await platform.post(f"{ACCOUNTS}/users", headers=bearer(token), json={
        "username": username, "role": "doctor", "display_name": "Dr. Li", "password": password,
        "department_id": cardiology, "email": "li@example.org"})
    assert created.status_code == 201, created.text
    doctor = created.json()
    assert doctor["role"] == "doctor" and doctor["department_id"] == cardiology and doctor["status"] == "active"
    assert password not in created.text

    read = await platform.get(f"{ACCOUNTS}/users/{doctor['id']}", headers=bearer(token))
    assert read.status_code == 200 and read.json() == doctor

    signed_in = await sign_in(platform, Person(doctor["id"], username, password))
    assert signed_in["role"] == "doctor" and signed_in["password_change_required"] is True
    me = (await platform.get(f"{AUTH}/me", headers=bearer(signed_in["access_token"]))).json()
    assert me["department_id"] == cardiology


async def test_the_user_list_filters_by_role_and_department_and_pages_by_keyset(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    doctors = [await create_staff(platform, token, department=d) for d in ("CARD", "CARD", "RAD")]
    await create_staff(platform, token, role="admin")
    assert (await register(platform)).status_code == 201

    listed = await platform.get(f"{ACCOUNTS}/users", headers=bearer(token), params={"role": "doctor"})
    assert listed.status_code == 200
    assert {u["id"] for u in listed.json()["items"]} == {d.id for d in doctors}
    assert {u["role"] for u in listed.json()["items"]} == {"doctor"} and listed.json()["next_cursor"] is None

    cardiology = await platform.get(f"{ACCOUNTS}/users", headers=bearer(token),
                                    params={"department_id": await department_id(platform, "CARD")})
    assert {u["id"] for u in cardiology.json()["items"]} == {d.id for d in doctors[:2]}

    everyone = [u["id"] for u in (await platform.get(f"{ACCOUNTS}/users", headers=bearer(token))).json()["items"]]
    assert len(everyone) == 6  # the seeded admin, 3 doctors, 1 more admin, 1 patient
    walked, cursor, pages = [], None, 0
    while True:
        page = await platform.get(f"{ACCOUNTS}/users", headers=bearer(token),
                                  params={"limit": 1, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        assert len(page.json()["items"]) <= 1
        walked += [u["id"] for u in page.json()["items"]]
        pages += 1
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert walked == everyone and len(set(walked)) == len(walked) and pages == len(everyone)


async def test_a_disabled_account_cannot_sign_in_and_its_sessions_end_until_enabled_again(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    doctor = await create_staff(platform, token, department="RAD")
    session = await sign_in(platform, doctor)

    disabled = await platform.post(f"{ACCOUNTS}/users/{doctor.id}/disable", headers=bearer(token))
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"

    assert_problem(await platform.get(f"{AUTH}/me", headers=bearer(session["access_token"])), 401, "token-revoked")
    assert_problem(await platform.post(f"{AUTH}/refresh", json={"refresh_token": session["refresh_token"]}),
                   401, "refresh-token-revoked")
    assert_problem(await login(platform, doctor), 403, "account-disabled")

    enabled = await platform.post(f"{ACCOUNTS}/users/{doctor.id}/enable", headers=bearer(token))
    assert enabled.status_code == 200 and enabled.json()["status"] == "active"
    again = await sign_in(platform, doctor)
    assert (await platform.get(f"{AUTH}/me", headers=bearer(again["access_token"]))).status_code == 200


async def test_a_deleted_account_is_gone_from_sign_in_reads_and_lists(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    doctor = await create_staff(platform, token)
    session = await sign_in(platform, doctor)

    deleted = await platform.delete(f"{ACCOUNTS}/users/{doctor.id}", headers=bearer(token))
    assert deleted.status_code == 204 and deleted.content == b""

    assert_problem(await login(platform, doctor), 401, "invalid-credentials")
    assert_problem(await platform.get(f"{ACCOUNTS}/users/{doctor.id}", headers=bearer(token)), 404, "not-found")
    assert_problem(await platform.get(f"{AUTH}/me", headers=bearer(session["access_token"])), 401, "token-revoked")
    listed = (await platform.get(f"{ACCOUNTS}/users", headers=bearer(token))).json()["items"]
    assert doctor.id not in [u["id"] for u in listed]
    history = (await platform.get(f"{ACCOUNTS}/users", headers=bearer(token), params={"status": "deleted"})).json()
    assert [u["id"] for u in history["items"]] == [doctor.id]  # soft delete: the history stays


async def test_a_password_reset_gives_a_temporary_password_that_must_be_changed(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    doctor = await create_staff(platform, token)
    session = await sign_in(platform, doctor)

    reset = await platform.post(f"{ACCOUNTS}/users/{doctor.id}/password-reset", headers=bearer(token))
    assert reset.status_code == 200, reset.text
    temporary = reset.json()["temporary_password"]
    assert len(temporary) >= 12 and temporary != doctor.password

    assert_problem(await login(platform, doctor), 401, "invalid-credentials")
    assert_problem(await platform.get(f"{AUTH}/me", headers=bearer(session["access_token"])), 401, "token-revoked")
    with_temporary = await login(platform, doctor, temporary)
    assert with_temporary.status_code == 200, with_temporary.text
    assert with_temporary.json()["password_change_required"] is True

    # With a temporary password a user may only read themselves, change it, or sign out.
    temporary_token = bearer(with_temporary.json()["access_token"])
    assert (await platform.get(f"{AUTH}/me", headers=temporary_token)).status_code == 200
    assert_problem(await platform.get("/api/patients/patients", headers=temporary_token), 403, "password-change-required")
    new = new_password()
    changed = await platform.post(f"{AUTH}/password", headers=temporary_token,
                                  json={"current_password": temporary, "new_password": new})
    assert changed.status_code == 204, changed.text
    fresh = await login(platform, doctor, new)
    assert fresh.json()["password_change_required"] is False
    assert (await platform.get("/api/patients/patients", headers=bearer(fresh.json()["access_token"]))).status_code == 200


async def test_an_assignment_moves_department_and_role_and_ends_the_old_sessions(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    doctor = await create_staff(platform, token, department="CARD")
    session = await sign_in(platform, doctor)
    radiology = await department_id(platform, "RAD")

    assigned = await platform.put(f"{ACCOUNTS}/users/{doctor.id}/assignment", headers=bearer(token),
                                  json={"department_id": radiology, "role": "admin"})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["department_id"] == radiology and assigned.json()["role"] == "admin"

    assert_problem(await platform.get(f"{AUTH}/me", headers=bearer(session["access_token"])), 401, "token-revoked")
    fresh = await sign_in(platform, doctor)
    assert fresh["role"] == "admin"
    me = (await platform.get(f"{AUTH}/me", headers=bearer(fresh["access_token"]))).json()
    assert me["department_id"] == radiology and me["role"] == "admin"
    # the new token carries the new role: the former doctor may now administer accounts
    assert (await platform.get(f"{ACCOUNTS}/users", headers=bearer(fresh["access_token"]))).status_code == 200


# --- login policy ----------------------------------------------------------------------------

async def test_a_stricter_password_policy_refuses_passwords_the_old_one_allowed(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    defaults = await platform.get(f"{ACCOUNTS}/login-policy", headers=bearer(token))
    assert defaults.status_code == 200
    assert defaults.json() == {"min_length": 10, "require_upper": True, "require_lower": True, "require_digit": True,
                               "require_symbol": False, "max_failed_attempts": 5, "lockout_s": 900}
    old_style = "Abcdefgh1234"  # 12 characters, upper, lower, digit: fine by the defaults
    assert (await register(platform, password=old_style)).status_code == 201

    stricter = {**defaults.json(), "min_length": 14, "require_symbol": True}
    put = await platform.put(f"{ACCOUNTS}/login-policy", headers=bearer(token), json=stricter)
    assert put.status_code == 200 and put.json() == stricter
    assert (await platform.get(f"{ACCOUNTS}/login-policy", headers=bearer(token))).json() == stricter

    refused = await register(platform, password="Abcdefgh5678")
    body = assert_problem(refused, 422, "validation-failed")
    assert [(e["loc"], e["type"]) for e in body["errors"]] == [("body.password", "weak_password")]
    assert "14" in body["errors"][0]["msg"] and "symbol" in body["errors"][0]["msg"]
    assert (await register(platform, password="Abcdefgh5678-long!")).status_code == 201
    # nothing stored is rewritten: existing passwords still sign in
    assert (await login(platform, admin)).status_code == 200


async def test_the_policys_failed_attempt_limit_locks_the_account_with_retry_after(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    policy = (await platform.get(f"{ACCOUNTS}/login-policy", headers=bearer(token))).json()
    put = await platform.put(f"{ACCOUNTS}/login-policy", headers=bearer(token),
                             json={**policy, "max_failed_attempts": 2, "lockout_s": 120})
    assert put.status_code == 200
    doctor = await create_staff(platform, token)

    for _ in range(2):
        assert_problem(await login(platform, doctor, "Wrong-password-1"), 401, "invalid-credentials")
    locked = await login(platform, doctor, "Wrong-password-1")
    assert_problem(locked, 429, "account-locked")
    assert 100 <= int(locked.headers["Retry-After"]) <= 120
    assert_problem(await login(platform, doctor), 429, "account-locked")  # the right password too


async def test_after_an_argon2_cost_change_a_successful_login_rehashes_the_password(platform):
    admin = await seed_admin(platform)
    before = await stored_hash(platform, admin.id)
    assert "m=8192,t=1" in before

    platform.services._hasher = Hasher(2, 16384, 1)  # the operator raised the cost
    assert_problem(await login(platform, admin, "Wrong-password-1"), 401, "invalid-credentials")
    assert await stored_hash(platform, admin.id) == before  # a failed login rewrites nothing
    await sign_in(platform, admin)
    after = await stored_hash(platform, admin.id)
    assert after != before and after.startswith("$argon2id$") and "m=16384,t=2,p=1" in after
    await sign_in(platform, admin)  # the new hash verifies, and is not rewritten again
    assert await stored_hash(platform, admin.id) == after


# --- audit -----------------------------------------------------------------------------------

async def test_sign_ins_and_account_changes_are_in_the_audit_trail(platform):
    admin = await seed_admin(platform)
    token = (await sign_in(platform, admin))["access_token"]
    doctor = await create_staff(platform, token)
    assert_problem(await login(platform, doctor, "Wrong-password-1"), 401, "invalid-credentials")
    assert (await platform.post(f"{ACCOUNTS}/users/{doctor.id}/disable", headers=bearer(token))).status_code == 200
    institution = await institution_id(platform)

    logins = await audit_rows(platform, "login", admin.id)
    assert [(r["outcome"], r["details"]) for r in logins] == [("success", {"reason": "success"})]
    assert logins[0]["actor_id"] == admin.id and logins[0]["institution_id"] == institution
    failures = await audit_rows(platform, "login", doctor.id)
    assert [(r["outcome"], r["details"]) for r in failures] == [("failure", {"reason": "bad_password"})]
    assert failures[0]["source"] == "/medflow/auth"
    for action in ("account.created", "account.disabled"):
        rows = await audit_rows(platform, action, doctor.id)
        assert len(rows) == 1, action
        assert rows[0]["outcome"] == "success" and rows[0]["actor_id"] == admin.id
        assert rows[0]["actor_role"] == "admin" and rows[0]["source"] == "/medflow/accounts"
    assert (await audit_rows(platform, "account.created", doctor.id))[0]["details"] == {"role": "doctor"}
