"""Building records test data through the API: users, tokens, patients, cases."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from medflow.accounts.users import NewUser, create_user
from medflow.auth.tokens import issue_access_token
from medflow.db.schema import departments, institutions
from medflow.ids import utcnow


@dataclass
class Actor:
    user_id: str
    role: str
    institution_id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


async def institution(platform, code: str) -> tuple[str, dict[str, str]]:
    """(institution id, department ids by code) of a seeded institution."""
    async with platform.services.db.connect() as conn:
        institution_id = (await conn.execute(sa.select(institutions.c.id).where(institutions.c.code == code))).scalar_one()
        depts = dict((await conn.execute(sa.select(departments.c.code, departments.c.id)
                                         .where(departments.c.institution_id == institution_id))).all())
    return institution_id, depts


async def actor(platform, code: str, username: str, role: str, department: str | None = None) -> Actor:
    """A real account of the institution and an access token for it."""
    institution_id, depts = await institution(platform, code)
    services = platform.services
    user = await create_user(services.db, services.hasher, institution_id, NewUser(
        username=username, role=role, display_name=username.title(), password="Long-enough-pw-42",
        department_id=depts.get(department) if department else None))
    from medflow.auth.principal import Principal
    principal = Principal(user.id, role, institution_id, user.department_id)
    token = issue_access_token(services.keys, principal, issuer=services.settings.jwt_issuer, now=utcnow(), ttl_s=600).token
    return Actor(user.id, role, institution_id, token)


async def patient(platform, doctor: Actor, mrn: str, name: str = "Test Patient", **extra) -> dict:
    response = await platform.post("/api/patients/patients", headers=doctor.headers,
                                   json={"mrn": mrn, "display_name": name, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def case(platform, doctor: Actor, patient_id: str, **fields) -> dict:
    body = {"patient_id": patient_id, "exam_type": "urinalysis", "modality": "LAB",
            "exam_time": "2026-11-01T08:30:00+08:00", "title": "Urinalysis", **fields}
    response = await platform.post("/api/cases/cases", headers=doctor.headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def problem(response, status: int, code: str) -> dict:
    """The problem+json body of an error answer, after checking its status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["status"] == status
    return body
