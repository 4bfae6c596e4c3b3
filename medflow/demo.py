"""Demo data for the embedded run: institutions, departments and accounts, written once.

Each capability adds its own demo data here so a newcomer sees it working. Demo
passwords are random, made on the first start, kept in ``<data_dir>/demo-logins.json``
(mode 600) and printed at every start.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

import sqlalchemy as sa

from medflow.accounts.directory import NewInstitution, create_department, create_institution
from medflow.audit.trail import AuditEntry, emit
from medflow.bootstrap import Services
from medflow.accounts.users import NewUser, create_user
from medflow.db.schema import departments, institutions, users
from medflow.ids import new_id, utcnow

log = logging.getLogger("medflow.demo")

DEMO = [
    (NewInstitution("MFGH", "MedFlow General Hospital", "hospital", "North District"),
     [("CARD", "Cardiology"), ("RAD", "Radiology"), ("NEPH", "Nephrology"), ("TCM", "Traditional Chinese Medicine")]),
    (NewInstitution("RRH", "Riverside Regional Hospital", "hospital", "River Valley"),
     [("RAD", "Radiology"), ("ER", "Emergency"), ("ECHO", "Echocardiography Lab")]),
    (NewInstitution("HXCL", "和协社区诊所", "clinic", "East District"),
     [("GP", "全科 General Practice")]),
]


# (username, role, display name, department code) in the first institution
DEMO_USERS = [
    ("admin", "admin", "Avery Admin", None),
    ("dr.li", "doctor", "Dr. Li Ming 李明", "CARD"),
    ("dr.wang", "doctor", "Dr. Wang Fang 王芳", "RAD"),
    ("zhang.wei", "patient", "Zhang Wei 张伟", None),
    ("li.na", "patient", "Li Na 李娜", None),
]


async def seed(services: Services) -> int:
    """Create the demo data that is missing, then print the demo logins."""
    from medflow.analysis import demo as analysis_demo
    from medflow.imaging import demo as imaging_demo
    from medflow.knowledge import demo as knowledge_demo
    from medflow.jobs import demo as jobs_demo
    from medflow.records import announcements_demo, demo as records_demo

    created = await seed_institutions(services)
    logins = await seed_users(services)
    await records_demo.seed(services)
    await announcements_demo.seed(services)
    await imaging_demo.seed(services)
    await knowledge_demo.seed(services)
    await jobs_demo.seed(services)     # a full export, run by the in-process job worker
    await analysis_demo.seed(services)  # exam items for the five models, submitted once the model server answers
    print_logins(logins)
    return created


def demo_password() -> str:
    return "Demo-" + secrets.token_urlsafe(9) + "7a"


def _logins_file(services: Services) -> Path:
    return Path(services.settings.data_dir) / "demo-logins.json"


async def seed_users(services: Services) -> list[dict[str, str]]:
    """The demo accounts of the first institution, created once; returns their logins."""
    institution, _ = DEMO[0]
    path = _logins_file(services)
    logins = json.loads(path.read_text()) if path.exists() else []
    known = {entry["username"] for entry in logins}
    async with services.db.connect() as conn:
        institution_id = (await conn.execute(sa.select(institutions.c.id).where(institutions.c.code == institution.code))).scalar_one()
        existing = set((await conn.execute(sa.select(users.c.username).where(users.c.institution_id == institution_id))).scalars())
        dept_ids = dict((await conn.execute(sa.select(departments.c.code, departments.c.id)
                                            .where(departments.c.institution_id == institution_id))).all())
    for username, role, name, dept in DEMO_USERS:
        if username in existing:
            continue
        password = demo_password()
        await create_user(services.db, services.hasher, institution_id, NewUser(
            username=username, role=role, display_name=name, password=password, department_id=dept_ids.get(dept)))
        logins = [e for e in logins if e["username"] != username] + [
            {"institution_code": institution.code, "username": username, "role": role, "password": password}]
    if logins and (not path.exists() or {e["username"] for e in logins} != known or len(logins) != len(known)):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(logins, out, ensure_ascii=False, indent=1)
    return logins


def print_logins(logins: list[dict[str, str]]) -> None:
    if not logins:
        return
    print("Demo logins (institution MFGH; POST /api/auth/login):", flush=True)
    for e in logins:
        print(f"  {e['role']:<8} {e['username']:<10} {e['password']}", flush=True)


async def seed_institutions(services: Services) -> int:
    """Create the demo institutions that are missing; returns how many were created."""
    created = 0
    for institution, departments in DEMO:
        async with services.db.connect() as conn:
            exists = (await conn.execute(sa.select(institutions.c.id).where(institutions.c.code == institution.code))).first()
        if exists:
            continue
        now = utcnow()
        institution_id = new_id()
        await create_institution(services.db, institution, institution_id=institution_id, now=now)
        for code, name in departments:
            await create_department(services.db, services.cache.cache, institution_id, code, name,
                                    department_id=new_id(), now=now)
        await emit(services.bus, services.catalogue,
                   AuditEntry(action="demo.seeded", resource_type="institution", outcome="success",
                              occurred_at=now, resource_id=institution_id, institution_id=institution_id,
                              actor_role="system", details={"departments": len(departments)}),
                   source="/medflow/demo")
        created += 1
    if created:
        log.info("demo data created", extra={"institutions": created})
    return created
