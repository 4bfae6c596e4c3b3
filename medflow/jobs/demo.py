"""Demo jobs for the embedded run: the MFGH administrator's first full export (a backup
batch to list and download), submitted once at start and run by the in-process worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from medflow.auth.principal import Principal
from medflow.db.schema import institutions, jobs, users
from medflow.jobs.model import JobRequest, submit

if TYPE_CHECKING:
    from medflow.bootstrap import Services


async def seed(services: "Services") -> int:
    """Submit the demo export once (Idempotency-Key ``demo-export``); returns jobs created."""
    async with services.db.connect() as conn:
        admin = (await conn.execute(sa.select(users.c.id, users.c.institution_id).join(
            institutions, institutions.c.id == users.c.institution_id).where(
            institutions.c.code == "MFGH", users.c.username == "admin"))).first()
        if admin is None or (await conn.execute(sa.select(jobs.c.id).where(
                jobs.c.institution_id == admin.institution_id).limit(1))).first():
            return 0
    _, created = await submit(services.db, services.bus, services.catalogue, Principal(admin.id, "admin", admin.institution_id),
                              JobRequest("export", options={"mode": "full", "format": "xlsx"}),
                              idempotency_key="demo-export", default_deadline_s=services.settings.job_deadline_s,
                              max_ids=services.settings.job_max_ids, source="/medflow/demo")
    return int(created)
