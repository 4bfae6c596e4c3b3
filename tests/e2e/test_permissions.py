"""Every operation of every HTTP function, called by every role: the answer matches the
access declared next to the operation, and its status is one the document declares."""

from __future__ import annotations

import re

import pytest

from medflow.auth.principal import Principal
from medflow.auth.tokens import issue_access_token
from medflow.ids import new_id, utcnow
from medflow.runtime.openapi import openapi_path
from medflow.runtime.registry import load_specs
from medflow.runtime.spec import HttpFunction

ROLES = [None, "patient", "doctor", "admin"]
OPERATIONS = [(spec, op) for spec in load_specs() if isinstance(spec, HttpFunction) for op in spec.operations]


def _token(services, role: str) -> str:
    principal = Principal(new_id(), role, new_id(), None)
    s = services.settings
    return issue_access_token(services.keys, principal, issuer=s.jwt_issuer, now=utcnow(), ttl_s=60).token


@pytest.fixture(scope="module")
async def platform(tmp_path_factory):
    """One embedded platform for the whole walk: permissions are code, not backend."""
    from conftest import running_platform
    async with running_platform("embedded", tmp_path_factory.mktemp("permissions")) as client:
        yield client


def _concrete(path: str) -> str:
    """A request path for a template: ids for id parameters, 1 for integer ones."""
    return re.sub(r"{[^}]+}", lambda m: "1" if m.group(0).endswith(":int}") else new_id(), path)


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r or "anonymous")
@pytest.mark.parametrize("spec,op", OPERATIONS, ids=lambda v: getattr(v, "operation_id", None) or "")
async def test_every_operation_answers_every_role_as_declared(platform, spec, op, role):
    path = _concrete(op.path)
    headers = {"authorization": f"Bearer {_token(platform.services, role)}"} if role else {}
    kwargs = {"json": {}} if op.method in ("POST", "PUT", "PATCH") else {}
    response = await platform.request(op.method, f"/api/{spec.name}{path}", headers=headers, **kwargs)

    if op.access.allows(role):
        assert response.status_code not in (401, 403) or response.json()["code"] not in ("unauthenticated", "forbidden"), \
            f"{op.operation_id} refused {role}: {response.text}"
    elif role is None:
        assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    else:
        assert response.status_code == 403 and response.json()["code"] == "forbidden"

    document = (await platform.get("/api/openapi.json")).json()
    template = openapi_path(f"/api/{spec.name}", op.path)
    assert str(response.status_code) in document["paths"][template][op.method.lower()]["responses"], \
        f"{op.operation_id} answered {response.status_code}, which its document does not declare"


def test_the_walk_covers_the_account_operations():
    names = {op.operation_id for _, op in OPERATIONS}
    assert {"auth.login", "auth.register", "accounts.create_staff", "accounts.set_login_policy",
            "directory.list_institutions"} <= names
