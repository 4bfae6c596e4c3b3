"""Demo announcements: a few notices of MedFlow General Hospital (MFGH), written once.

``seed`` runs after the demo institutions and accounts exist (``medflow.demo``): it
publishes as the demo administrator (username ``admin``) when the institution has no
announcement yet, withdrawn ones included, so a demo user who deletes them all does not
see them come back at the next start.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from medflow.audit.trail import audit
from medflow.bootstrap import Services
from medflow.cache.aside import cache_aside
from medflow.db.schema import announcements, institutions, users
from medflow.ids import utcnow
from medflow.records.announcements import Draft, publish

log = logging.getLogger("medflow.demo")

INSTITUTION_CODE = "MFGH"
ADMIN_USERNAME = "admin"

# (hours ago, draft): published in this order, so the newest is first in every list.
DEMO_ANNOUNCEMENTS = [
    (72, Draft("Welcome to MedFlow", "Reports, lab results and images released by your doctor appear under "
               "My records. 检查报告发布后可在“我的记录”中查看。", "all")),
    (30, Draft("Radiology reading room moves to Building B", "From Monday the radiology reading room is on the "
               "2nd floor of Building B. Imaging requests are unchanged.", "doctors")),
    (2, Draft("Flu vaccination clinic", "Walk-in flu vaccinations every weekday 08:00–11:30 at the outpatient "
              "hall, counter 3. 流感疫苗门诊：工作日 8:00–11:30。", "patients")),
]


async def seed(services: Services) -> int:
    """Publish the demo announcements when MFGH has none; returns how many were published."""
    async with services.db.connect() as conn:
        institution_id = (await conn.execute(sa.select(institutions.c.id)
                                             .where(institutions.c.code == INSTITUTION_CODE))).scalar()
        if institution_id is None:
            return 0
        admin_id = (await conn.execute(sa.select(users.c.id).where(
            users.c.institution_id == institution_id, users.c.username == ADMIN_USERNAME))).scalar()
        existing = (await conn.execute(sa.select(sa.func.count()).select_from(announcements)
                                       .where(announcements.c.institution_id == institution_id))).scalar_one()
    if admin_id is None or existing:
        return 0
    now = utcnow()
    for hours_ago, draft in DEMO_ANNOUNCEMENTS:
        await publish(services.db, cache_aside(services), institution_id, admin_id, draft,
                      now=now - timedelta(hours=hours_ago))
    await audit(services, source="/medflow/demo", action="demo.seeded",
                resource_type="announcement", outcome="success", actor_role="system",
                institution_id=institution_id, details={"announcements": len(DEMO_ANNOUNCEMENTS)})
    log.info("demo announcements created", extra={"announcements": len(DEMO_ANNOUNCEMENTS)})
    return len(DEMO_ANNOUNCEMENTS)
