"""Demo data for the embedded run: institutions and departments, written once.

Each capability adds its own demo data here so a newcomer sees it working.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from medflow.accounts.directory import NewInstitution, create_department, create_institution
from medflow.audit.trail import AuditEntry, emit
from medflow.bootstrap import Services
from medflow.db.schema import institutions
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


async def seed(services: Services) -> int:
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
