"""Announcements end to end over HTTP, on the one-process server (embedded and real servers):
administrators publish, edit and withdraw; doctors and patients read what is meant for
them; other institutions see nothing; reads come from the cache and writes show at once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from conftest import unique
from medflow.accounts.users import NewUser, create_user
from medflow.auth.principal import Principal
from medflow.auth.tokens import issue_access_token
from medflow.cache.aside import cache_aside
from medflow.db.schema import audit_log, institutions
from medflow.ids import new_id, utcnow
from medflow.pagination import encode_cursor

API = "/api/announcements/announcements"
PROBLEM = "application/problem+json"


@dataclass
class Member:
    user_id: str
    role: str
    institution_id: str
    headers: dict[str, str]


async def member(platform, role: str, code: str = "MFGH") -> Member:
    """A real account of a seeded institution, with an access token."""
    services = platform.services
    async with services.db.connect() as conn:
        institution_id = (await conn.execute(sa.select(institutions.c.id).where(institutions.c.code == code))).scalar_one()
    user = await create_user(services.db, services.hasher, institution_id, NewUser(
        username=unique(f"{role}."), role=role, display_name=f"A {role}", password="Long-enough-pw-42"))
    principal = Principal(user.id, role, institution_id)
    token = issue_access_token(services.keys, principal, issuer=services.settings.jwt_issuer, now=utcnow(), ttl_s=600)
    return Member(user.id, role, institution_id, {"authorization": f"Bearer {token.token}"})


@pytest.fixture
async def people(platform):
    """An admin, a doctor and a patient of MFGH, and an admin and a doctor of RRH."""
    return {"admin": await member(platform, "admin"), "doctor": await member(platform, "doctor"),
            "patient": await member(platform, "patient"), "rrh_admin": await member(platform, "admin", "RRH"),
            "rrh_doctor": await member(platform, "doctor", "RRH")}


async def publish(platform, admin: Member, title: str, audience: str = "all", body: str = "Details.") -> dict:
    response = await platform.post(API, headers=admin.headers, json={"title": title, "body": body, "audience": audience})
    assert response.status_code == 201, response.text
    return response.json()


async def titles(platform, who: Member, **params) -> list[str]:
    response = await platform.get(API, headers=who.headers, params=params)
    assert response.status_code == 200, response.text
    return [a["title"] for a in response.json()["items"]]


def assert_problem(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == code


def announcement_stats(platform) -> dict[str, float]:
    return cache_aside(platform.services).stats().get("announcements", {"hits": 0, "misses": 0, "loads": 0})


async def audit_actions(platform, resource_id: str, expected: int, timeout_s: float = 30.0) -> list[str]:
    """The audit actions recorded for an announcement, once the audit sink wrote ``expected`` rows."""
    deadline = time.monotonic() + timeout_s
    while True:
        if platform.kind == "embedded":
            await platform.services.bus.wait_idle()
        async with platform.services.db.connect() as conn:
            rows = (await conn.execute(sa.select(audit_log.c.action, audit_log.c.actor_id)
                                       .where(audit_log.c.resource_id == resource_id)
                                       .order_by(audit_log.c.occurred_at))).all()
        if len(rows) >= expected or time.monotonic() > deadline:
            return [action for action, _ in rows]
        await asyncio.sleep(0.2)


# --- who reads what -----------------------------------------------------------------------------

async def test_each_member_lists_and_reads_what_is_meant_for_them(platform, people):
    admin, doctor, patient = people["admin"], people["doctor"], people["patient"]
    everyone = await publish(platform, admin, "Lifts out of service", "all")
    staff = await publish(platform, admin, "Ward round moved to 9:00", "doctors")
    public = await publish(platform, admin, "Flu clinic open", "patients")

    assert await titles(platform, admin) == ["Flu clinic open", "Ward round moved to 9:00", "Lifts out of service"]
    assert await titles(platform, doctor) == ["Ward round moved to 9:00", "Lifts out of service"]
    assert await titles(platform, patient) == ["Flu clinic open", "Lifts out of service"]

    read = await platform.get(f"{API}/{staff['id']}", headers=doctor.headers)
    assert read.status_code == 200 and read.json() == staff
    assert staff["author_id"] == admin.user_id and staff["version"] == 1 and staff["audience"] == "doctors"
    assert_problem(await platform.get(f"{API}/{staff['id']}", headers=patient.headers), 404, "not-found")
    assert_problem(await platform.get(f"{API}/{public['id']}", headers=doctor.headers), 404, "not-found")
    assert (await platform.get(f"{API}/{everyone['id']}", headers=patient.headers)).status_code == 200


async def test_lists_are_newest_first_in_keyset_pages(platform, people):
    admin = people["admin"]
    for i in range(5):
        await publish(platform, admin, f"Notice {i}")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = (await platform.get(API, headers=people["doctor"].headers, params=params)).json()
        seen += [a["title"] for a in body["items"]]
        pages, cursor = pages + 1, body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Notice {i}" for i in reversed(range(5))] and pages == 3


async def test_other_institutions_see_nothing_and_touch_nothing(platform, people):
    mine = await publish(platform, people["admin"], "Only for MFGH")
    rrh_admin, rrh_doctor = people["rrh_admin"], people["rrh_doctor"]
    assert await titles(platform, rrh_doctor) == []
    assert await titles(platform, rrh_admin) == []
    url = f"{API}/{mine['id']}"
    assert_problem(await platform.get(url, headers=rrh_doctor.headers), 404, "not-found")
    assert_problem(await platform.put(url, headers=rrh_admin.headers,
                                      json={"title": "Hijacked", "body": "x", "audience": "all", "version": 1}),
                   404, "not-found")
    assert_problem(await platform.delete(url, headers=rrh_admin.headers), 404, "not-found")
    assert (await platform.get(url, headers=people["doctor"].headers)).json()["title"] == "Only for MFGH"


async def test_doctors_and_patients_cannot_publish_edit_or_withdraw(platform, people):
    notice = await publish(platform, people["admin"], "Admins only write")
    for role in ("doctor", "patient"):
        headers = people[role].headers
        assert_problem(await platform.post(API, headers=headers, json={"title": "t", "body": "b"}), 403, "forbidden")
        assert_problem(await platform.put(f"{API}/{notice['id']}", headers=headers,
                                          json={"title": "t", "body": "b", "audience": "all", "version": 1}),
                       403, "forbidden")
        assert_problem(await platform.delete(f"{API}/{notice['id']}", headers=headers), 403, "forbidden")
    assert_problem(await platform.get(API), 401, "unauthenticated")


# --- edits, versions, withdrawal ---------------------------------------------------------------

async def test_an_edit_shows_at_once_in_lists_and_reads_that_were_cached(platform, people):
    admin, doctor, patient = people["admin"], people["doctor"], people["patient"]
    notice = await publish(platform, admin, "Clinic hours", "all", body="Open 8-17.")
    url = f"{API}/{notice['id']}"
    for _ in range(3):  # warm the caches of both views and of the single read
        assert (await platform.get(url, headers=doctor.headers)).json()["body"] == "Open 8-17."
        assert await titles(platform, doctor) == ["Clinic hours"]
        assert await titles(platform, patient) == ["Clinic hours"]

    edited = await platform.put(url, headers=admin.headers, json={"title": "Clinic hours (new)", "body": "Open 7-19.",
                                                                   "audience": "doctors", "version": 1})
    assert edited.status_code == 200, edited.text
    assert edited.json()["version"] == 2 and edited.json()["published_at"] == notice["published_at"]

    read = (await platform.get(url, headers=doctor.headers)).json()
    assert (read["title"], read["body"], read["version"]) == ("Clinic hours (new)", "Open 7-19.", 2)
    assert await titles(platform, doctor) == ["Clinic hours (new)"]
    assert await titles(platform, patient) == [], "now for doctors only"
    assert_problem(await platform.get(url, headers=patient.headers), 404, "not-found")


async def test_a_stale_version_is_409_and_changes_nothing(platform, people):
    admin = people["admin"]
    notice = await publish(platform, admin, "Parking", body="Lot A closed.")
    url = f"{API}/{notice['id']}"
    first = await platform.put(url, headers=admin.headers,
                               json={"title": "Parking", "body": "Lots A and B closed.", "audience": "all", "version": 1})
    assert first.status_code == 200
    stale = await platform.put(url, headers=admin.headers,
                               json={"title": "Parking", "body": "Lot A open.", "audience": "all", "version": 1})
    assert_problem(stale, 409, "version-conflict")
    current = (await platform.get(url, headers=people["doctor"].headers)).json()
    assert (current["body"], current["version"]) == ("Lots A and B closed.", 2)


async def test_a_withdrawn_announcement_disappears_everywhere(platform, people):
    admin, doctor = people["admin"], people["doctor"]
    keep, gone = await publish(platform, admin, "Stays"), await publish(platform, admin, "Withdrawn")
    url = f"{API}/{gone['id']}"
    assert (await platform.get(url, headers=doctor.headers)).status_code == 200  # cached now
    assert await titles(platform, doctor) == ["Withdrawn", "Stays"]

    assert (await platform.delete(url, headers=admin.headers)).status_code == 204
    assert_problem(await platform.get(url, headers=doctor.headers), 404, "not-found")
    assert_problem(await platform.get(url, headers=admin.headers), 404, "not-found")
    assert await titles(platform, doctor) == ["Stays"]
    assert_problem(await platform.delete(url, headers=admin.headers), 404, "not-found")
    assert_problem(await platform.put(url, headers=admin.headers,
                                      json={"title": "Back", "body": "b", "audience": "all", "version": 2}),
                   404, "not-found")
    assert keep["id"] != gone["id"]


async def test_every_write_is_audited(platform, people):
    admin = people["admin"]
    notice = await publish(platform, admin, "Audited")
    url = f"{API}/{notice['id']}"
    await platform.put(url, headers=admin.headers, json={"title": "Audited", "body": "v2", "audience": "all", "version": 1})
    await platform.delete(url, headers=admin.headers)
    actions = await audit_actions(platform, notice["id"], expected=3)
    assert sorted(actions) == ["announcement.deleted", "announcement.published", "announcement.updated"]


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"body": "no title"},
    {"title": "", "body": "empty title"},
    {"title": "   ", "body": "blank title"},
    {"title": "t" * 201, "body": "title too long"},
    {"title": "no body"},
    {"title": "t", "body": "b" * 10_001},
    {"title": "t", "body": "b", "audience": "nurses"},
    {"title": "t", "body": "b", "pinned": True},
])
async def test_an_invalid_announcement_is_422_and_nothing_is_published(platform, people, body):
    admin = people["admin"]
    assert_problem(await platform.post(API, headers=admin.headers, json=body), 422, "validation-failed")
    assert await titles(platform, admin) == []


async def test_invalid_edits_pages_and_ids_are_refused(platform, people):
    admin = people["admin"]
    notice = await publish(platform, admin, "Valid")
    url = f"{API}/{notice['id']}"
    for change in ({"title": "t", "body": "b", "audience": "all"}, {"title": "t", "body": "b", "audience": "all", "version": 0},
                   {"title": "t", "body": "b", "version": 1}):
        assert_problem(await platform.put(url, headers=admin.headers, json=change), 422, "validation-failed")
    for params in ({"limit": 0}, {"limit": 201}, {"order": "oldest"}):
        assert_problem(await platform.get(API, headers=admin.headers, params=params), 422, "validation-failed")
    for cursor in ("not-a-cursor!", encode_cursor(["x"]), encode_cursor(["not a time", new_id()]),
                   encode_cursor(["2026-11-01T08:00:00", new_id()]), encode_cursor([123, "x"])):
        assert_problem(await platform.get(API, headers=admin.headers, params={"cursor": cursor}), 400, "invalid-cursor")
    for bad_id in ("nope", new_id().lower() + "x"):
        assert_problem(await platform.get(f"{API}/{bad_id}", headers=admin.headers), 404, "not-found")
    assert (await platform.get(url, headers=admin.headers)).json()["version"] == 1


# --- cache ----------------------------------------------------------------------------------------

async def test_repeated_reads_are_cache_hits_and_unknown_ids_are_remembered(platform, people):
    admin, doctor = people["admin"], people["doctor"]
    notice = await publish(platform, admin, "Hit me")
    url = f"{API}/{notice['id']}"
    before = announcement_stats(platform)
    for _ in range(10):
        assert (await platform.get(url, headers=doctor.headers)).status_code == 200
        assert await titles(platform, doctor) == ["Hit me"]
    after = announcement_stats(platform)
    assert after["loads"] - before["loads"] == 2, "one load for the read, one for the list"
    assert after["hits"] - before["hits"] == 18

    unknown = new_id()
    for _ in range(5):
        assert_problem(await platform.get(f"{API}/{unknown}", headers=doctor.headers), 404, "not-found")
    remembered = announcement_stats(platform)
    assert remembered["loads"] - after["loads"] == 1 and remembered["negative_hits"] - after.get("negative_hits", 0) == 4

    metrics = (await platform.get("/metrics")).text
    assert 'medflow_cache_hits_total{kind="announcements"}' in metrics
    assert 'medflow_cache_load_seconds_count{kind="announcements"}' in metrics


async def test_concurrent_cold_reads_load_once(platform, people):
    admin, doctor = people["admin"], people["doctor"]
    await publish(platform, admin, "Everyone at once")
    before = announcement_stats(platform)
    responses = await asyncio.gather(*(platform.get(API, headers=doctor.headers) for _ in range(30)))
    assert all(r.status_code == 200 for r in responses)
    assert announcement_stats(platform)["loads"] - before["loads"] == 1
