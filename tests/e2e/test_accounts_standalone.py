"""The auth and accounts functions each started alone with functions-framework, as their
Knative Services run them, against the real servers (MariaDB, Redis, Kafka, MinIO) and one
shared JWT key-set file: a token one function issues is honoured by the other, a session
ended on one is ended on the other within the revocation recheck interval (revocation lives
in Redis), and keys rotate by key id."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import jwt
import pytest
import sqlalchemy as sa

from conftest import create_mysql_database, drop_mysql_database, real_settings_env, unique
from support_processes import free_port, function_command, running
from medflow.accounts.users import NewUser, create_user
from medflow.auth.keys import new_key_entry
from medflow.auth.passwords import Hasher
from medflow.db import migrate
from medflow.db.engine import Database, sync_url
from medflow.db.schema import departments, institutions
from medflow.ids import new_id, utcnow

PROBLEM = "application/problem+json"
CHEAP_ARGON2 = {"MEDFLOW_ARGON2_TIME_COST": "1", "MEDFLOW_ARGON2_MEMORY_KIB": "8192", "MEDFLOW_ARGON2_PARALLELISM": "1"}


def new_password() -> str:
    return f"Pw-{secrets.token_hex(6)}-Zz9"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == code


RECHECK_S = 1.0  # MEDFLOW_REVOCATION_RECHECK_S of the functions (the default)


def refused_within(request, seconds: float = RECHECK_S + 0.5) -> httpx.Response:
    """The answer once the other process has seen a revocation, or the last one after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        response = request()
        if response.status_code == 401 or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def write_key_set(path: Path, active: str, entries: list[dict[str, str]]) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"active": active, "keys": entries}, out)
    return path


def public_only(entry: dict[str, str]) -> dict[str, str]:
    return {"kid": entry["kid"], "public_pem": entry["public_pem"]}


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


class Function:
    """One function process: its base URL and a client for it."""

    def __init__(self, name: str, port: int) -> None:
        self.name, self.base = name, f"http://127.0.0.1:{port}"

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.base + path, timeout=15.0, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.request("GET", path, **kwargs)


@pytest.fixture(scope="module")
def realm(tmp_path_factory):
    """A fresh migrated MariaDB database with one institution (departments CARD, RAD) and
    its administrator, the key sets of a rotation, and the environment of the functions."""
    url = create_mysql_database()
    try:
        migrate.upgrade(url)
        code, now, institution_id = unique("SA").upper(), utcnow(), new_id()
        engine = sa.create_engine(sync_url(url))
        with engine.begin() as conn:
            conn.execute(institutions.insert().values(id=institution_id, code=code, name=f"Hospital {code}",
                                                      created_at=now, updated_at=now))
            for dep in ("CARD", "RAD"):
                conn.execute(departments.insert().values(id=new_id(), institution_id=institution_id, code=dep,
                                                         name=dep, created_at=now, updated_at=now))
            cardiology = conn.execute(sa.select(departments.c.id).where(
                departments.c.institution_id == institution_id, departments.c.code == "CARD")).scalar_one()
        engine.dispose()

        admin_password, admin_username = new_password(), unique("admin.")

        async def seed_admin() -> str:
            db = Database(url)
            try:
                user = await create_user(db, Hasher(1, 8192, 1), institution_id, NewUser(
                    username=admin_username, role="admin", display_name="Ada Admin", password=admin_password))
            finally:
                await db.close()
            return user.id

        admin_id = asyncio.run(seed_admin())
        keys_dir = tmp_path_factory.mktemp("keys")
        old, new = new_key_entry("2026-08"), new_key_entry("2026-11")
        key_sets = {
            "old": write_key_set(keys_dir / "old.json", old["kid"], [old]),
            "rotated": write_key_set(keys_dir / "rotated.json", new["kid"], [new, public_only(old)]),
            "old-dropped": write_key_set(keys_dir / "old-dropped.json", new["kid"], [new]),
        }
        env = {**real_settings_env(url, unique("sa")), **CHEAP_ARGON2,
               "MEDFLOW_REVOCATION_RECHECK_S": str(RECHECK_S),
               "MEDFLOW_DATA_DIR": str(tmp_path_factory.mktemp("data"))}
        yield {"url": url, "code": code, "institution_id": institution_id, "cardiology": cardiology,
               "admin": {"id": admin_id, "username": admin_username, "password": admin_password},
               "key_sets": key_sets, "kids": (old["kid"], new["kid"]), "env": env,
               "logs": tmp_path_factory.mktemp("logs")}
    finally:
        drop_mysql_database(url)
        if "env" in locals():
            from conftest import delete_topics
            delete_topics(env["MEDFLOW_KAFKA_BOOTSTRAP"], env["MEDFLOW_KAFKA_NAMESPACE"] + ".")


def start(stack: ExitStack, realm: dict, name: str, key_set: str) -> Function:
    port = free_port()
    function = Function(name, port)
    env = {**realm["env"], "MEDFLOW_JWT_KEYS_FILE": str(realm["key_sets"][key_set])}
    stack.enter_context(running(function_command(name, port), env, realm["logs"] / f"{name}-{key_set}-{port}.log",
                                f"{function.base}/healthz"))
    return function


@pytest.fixture(scope="module")
def functions(realm):
    """auth and accounts, each alone, sharing the key set whose active key is the old one."""
    with ExitStack() as stack:
        yield start(stack, realm, "auth", "old"), start(stack, realm, "accounts", "old")


def sign_in(auth: Function, realm: dict, username: str, password: str) -> dict:
    response = auth.post("/login", json={"institution_code": realm["code"], "username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def admin_session(auth: Function, realm: dict) -> dict:
    return sign_in(auth, realm, realm["admin"]["username"], realm["admin"]["password"])


def test_both_functions_alone_report_the_real_servers_healthy(functions):
    for function in functions:
        health = function.get("/healthz").json()
        assert health["function"] == function.name
        assert health["checks"] == {"database": True, "cache": True, "objects": True}


def test_a_patient_registers_and_signs_in_on_the_auth_function_alone(functions, realm):
    auth, _ = functions
    username, password = unique("pat."), new_password()
    created = auth.post("/register", json={"institution_code": realm["code"], "username": username,
                                           "password": password, "display_name": "Pat Patient"})
    assert created.status_code == 201, created.text
    assert created.json()["role"] == "patient" and created.json()["institution_id"] == realm["institution_id"]
    tokens = sign_in(auth, realm, username, password)
    assert tokens["role"] == "patient" and kid_of(tokens["access_token"]) == realm["kids"][0]
    me = auth.get("/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200 and me.json()["username"] == username
    assert_problem(auth.post("/register", json={"institution_code": realm["code"], "username": username,
                                                "password": new_password(), "display_name": "Twin"}),
                   409, "username-taken")


def test_a_token_from_the_auth_function_is_honoured_by_the_accounts_function(functions, realm):
    auth, accounts = functions
    admin = admin_session(auth, realm)
    password, username = new_password(), unique("dr.")
    created = accounts.post("/users", headers=bearer(admin["access_token"]), json={
        "username": username, "role": "doctor", "display_name": "Dr. Alone", "password": password,
        "department_id": realm["cardiology"], "must_change_password": False})
    assert created.status_code == 201, created.text
    assert created.json()["department_id"] == realm["cardiology"]
    listed = accounts.get("/users", headers=bearer(admin["access_token"]), params={"role": "doctor"})
    assert created.json()["id"] in [u["id"] for u in listed.json()["items"]]

    doctor = sign_in(auth, realm, username, password)  # the new account signs in on the other function
    assert doctor["role"] == "doctor"
    assert_problem(accounts.get("/users", headers=bearer(doctor["access_token"])), 403, "forbidden")
    assert_problem(accounts.get("/users"), 401, "unauthenticated")


def test_refresh_rotation_and_reuse_detection_reach_the_other_function(functions, realm):
    auth, accounts = functions
    first = admin_session(auth, realm)
    rotated = auth.post("/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert accounts.get("/users", headers=bearer(second["access_token"])).status_code == 200

    assert_problem(auth.post("/refresh", json={"refresh_token": first["refresh_token"]}), 401, "refresh-token-reused")
    assert_problem(auth.post("/refresh", json={"refresh_token": second["refresh_token"]}), 401, "refresh-token-revoked")
    # the revocation is in Redis: the accounts process refuses the user's tokens too
    assert_problem(refused_within(lambda: accounts.get("/users", headers=bearer(second["access_token"]))),
                   401, "token-revoked")
    assert_problem(refused_within(lambda: accounts.get("/users", headers=bearer(first["access_token"]))),
                   401, "token-revoked")
    assert accounts.get("/users", headers=bearer(admin_session(auth, realm)["access_token"])).status_code == 200


def test_logout_on_the_auth_function_ends_the_token_on_the_accounts_function(functions, realm):
    auth, accounts = functions
    session, other = admin_session(auth, realm), admin_session(auth, realm)
    assert accounts.get("/users", headers=bearer(session["access_token"])).status_code == 200
    out = auth.post("/logout", headers=bearer(session["access_token"]), json={"refresh_token": session["refresh_token"]})
    assert out.status_code == 204
    assert_problem(refused_within(lambda: accounts.get("/users", headers=bearer(session["access_token"]))),
                   401, "token-revoked")
    assert_problem(auth.post("/refresh", json={"refresh_token": session["refresh_token"]}), 401, "refresh-token-revoked")
    assert accounts.get("/users", headers=bearer(other["access_token"])).status_code == 200  # only that session


def test_keys_rotate_by_key_id(functions, realm):
    auth, accounts = functions
    old_kid, new_kid = realm["kids"]
    old_token = admin_session(auth, realm)["access_token"]
    assert kid_of(old_token) == old_kid
    with ExitStack() as stack:
        rotated_auth = start(stack, realm, "auth", "rotated")
        rotated_accounts = start(stack, realm, "accounts", "rotated")
        dropped_accounts = start(stack, realm, "accounts", "old-dropped")

        # the new active key signs; the old public key still verifies what it signed
        new_token = admin_session(rotated_auth, realm)["access_token"]
        assert kid_of(new_token) == new_kid
        assert rotated_accounts.get("/users", headers=bearer(old_token)).status_code == 200
        assert rotated_accounts.get("/users", headers=bearer(new_token)).status_code == 200
        # an instance not yet given the new key refuses the new tokens
        assert_problem(accounts.get("/users", headers=bearer(new_token)), 401, "token-invalid")
        # once the old key is dropped, its tokens are refused
        assert_problem(dropped_accounts.get("/users", headers=bearer(old_token)), 401, "token-invalid")
        assert dropped_accounts.get("/users", headers=bearer(new_token)).status_code == 200
