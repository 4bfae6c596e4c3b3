"""The doctor directory and the department dictionary over HTTP, served cache-aside, on the
one-process server (embedded and real servers)."""

from __future__ import annotations

import sqlalchemy as sa

from conftest import unique
from medflow.accounts.directory import create_department, forget_departments, forget_doctor_profiles
from medflow.accounts.users import NewUser, create_user
from medflow.auth.principal import Principal
from medflow.auth.tokens import issue_access_token
from medflow.cache.aside import cache_aside
from medflow.db.schema import departments, institutions, users
from medflow.ids import new_id, utcnow

DIRECTORY = "/api/directory/institutions"


async def ids_of(platform, code: str) -> tuple[str, dict[str, str]]:
    async with platform.services.db.connect() as conn:
        institution_id = (await conn.execute(sa.select(institutions.c.id).where(institutions.c.code == code))).scalar_one()
        depts = dict((await conn.execute(sa.select(departments.c.code, departments.c.id)
                                         .where(departments.c.institution_id == institution_id))).all())
    return institution_id, depts


async def account(platform, code: str, role: str, name: str, department_id: str | None = None,
                  profile: dict | None = None) -> str:
    institution_id, _ = await ids_of(platform, code)
    services = platform.services
    user = await create_user(services.db, services.hasher, institution_id, NewUser(
        username=unique("u."), role=role, display_name=name, password="Long-enough-pw-42",
        department_id=department_id, profile=profile))
    return user.id


def bearer(platform, user_id: str, role: str, institution_id: str) -> dict[str, str]:
    services = platform.services
    token = issue_access_token(services.keys, Principal(user_id, role, institution_id), issuer=services.settings.jwt_issuer,
                               now=utcnow(), ttl_s=600)
    return {"authorization": f"Bearer {token.token}"}


async def test_members_list_their_institutions_active_doctors_by_name(platform):
    mfgh, depts = await ids_of(platform, "MFGH")
    await account(platform, "MFGH", "doctor", "Dr. Zhou", depts["CARD"], {"specialty": "cardiology", "languages": ["zh", "en"]})
    await account(platform, "MFGH", "doctor", "Dr. Abe", depts["RAD"])
    gone = await account(platform, "MFGH", "doctor", "Dr. Gone", depts["RAD"])
    await account(platform, "MFGH", "admin", "Not A Doctor")
    await account(platform, "RRH", "doctor", "Dr. Elsewhere")
    async with platform.services.db.transaction() as conn:
        await conn.execute(users.update().where(users.c.id == gone).values(status="disabled"))
    patient = await account(platform, "MFGH", "patient", "Pat")
    headers = bearer(platform, patient, "patient", mfgh)

    listed = await platform.get(f"{DIRECTORY}/{mfgh}/doctors", headers=headers)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [d["display_name"] for d in items] == ["Dr. Abe", "Dr. Zhou"]
    assert items[1]["profile"] == {"specialty": "cardiology", "languages": ["zh", "en"]}
    assert items[1]["department_id"] == depts["CARD"] and set(items[1]) == {"id", "display_name", "department_id", "profile"}

    cardiology = await platform.get(f"{DIRECTORY}/{mfgh}/doctors", headers=headers, params={"department_id": depts["CARD"]})
    assert [d["display_name"] for d in cardiology.json()["items"]] == ["Dr. Zhou"]

    first = (await platform.get(f"{DIRECTORY}/{mfgh}/doctors", headers=headers, params={"limit": 1})).json()
    second = (await platform.get(f"{DIRECTORY}/{mfgh}/doctors", headers=headers,
                                 params={"limit": 1, "cursor": first["next_cursor"]})).json()
    assert [d["display_name"] for d in first["items"] + second["items"]] == ["Dr. Abe", "Dr. Zhou"]
    assert second["next_cursor"] is None


async def test_another_institution_is_404_and_anonymous_is_401(platform):
    mfgh, _ = await ids_of(platform, "MFGH")
    rrh, _ = await ids_of(platform, "RRH")
    doctor = await account(platform, "RRH", "doctor", "Dr. Other")
    headers = bearer(platform, doctor, "doctor", rrh)
    response = await platform.get(f"{DIRECTORY}/{mfgh}/doctors", headers=headers)
    assert response.status_code == 404 and response.json()["code"] == "not-found"
    assert (await platform.get(f"{DIRECTORY}/{new_id()}/doctors", headers=headers)).status_code == 404
    assert (await platform.get(f"{DIRECTORY}/{mfgh}/doctors")).status_code == 401
    bad = await platform.get(f"{DIRECTORY}/{rrh}/doctors", headers=headers, params={"cursor": "garbage!"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid-cursor"
    unknown = await platform.get(f"{DIRECTORY}/{rrh}/doctors", headers=headers, params={"department_id": "x"})
    assert unknown.status_code == 422


async def test_profiles_are_served_from_cache_until_forgotten(platform):
    mfgh, _ = await ids_of(platform, "MFGH")
    doctor = await account(platform, "MFGH", "doctor", "Dr. Before")
    headers = bearer(platform, doctor, "doctor", mfgh)
    aside = cache_aside(platform.services)
    url = f"{DIRECTORY}/{mfgh}/doctors"

    before = aside.stats().get("profiles", {"hits": 0, "loads": 0})
    for _ in range(5):
        assert [d["display_name"] for d in (await platform.get(url, headers=headers)).json()["items"]] == ["Dr. Before"]
    stats = aside.stats()["profiles"]
    assert stats["loads"] - before["loads"] == 1 and stats["hits"] - before["hits"] == 4

    async with platform.services.db.transaction() as conn:  # an account change, as accounts makes it
        await conn.execute(users.update().where(users.c.id == doctor).values(display_name="Dr. After"))
    await forget_doctor_profiles(platform.services.cache.cache, mfgh)
    assert [d["display_name"] for d in (await platform.get(url, headers=headers)).json()["items"]] == ["Dr. After"]


async def test_department_lists_are_cached_and_invalidated_when_a_department_is_added(platform):
    mfgh, _ = await ids_of(platform, "MFGH")
    services = platform.services
    url = f"{DIRECTORY}/{mfgh}/departments"
    codes = [d["code"] for d in (await platform.get(url)).json()["items"]]
    assert "CARD" in codes and "ONC" not in codes
    before = cache_aside(services).stats()["dictionaries"]["hits"]
    for _ in range(5):
        assert [d["code"] for d in (await platform.get(url)).json()["items"]] == codes
    assert cache_aside(services).stats()["dictionaries"]["hits"] == before + 5

    await create_department(services.db, services.cache.cache, mfgh, "ONC", "Oncology", department_id=new_id(), now=utcnow())
    assert "ONC" in [d["code"] for d in (await platform.get(url)).json()["items"]]

    missing = new_id()
    assert (await platform.get(f"{DIRECTORY}/{missing}/departments")).status_code == 404
    assert (await platform.get(f"{DIRECTORY}/{missing}/departments")).status_code == 404
    assert cache_aside(services).stats()["dictionaries"]["negative_hits"] >= 1
    await forget_departments(services.cache.cache, mfgh)
