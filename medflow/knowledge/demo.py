"""The starter knowledge base (``medflow/knowledge/starter/*.md``: guideline summaries and
platform help written by the project), uploaded once for the first demo institution; the
in-process bus ingests it like any upload."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from medflow.bootstrap import Services
from medflow.db.schema import institutions, knowledge_documents, users
from medflow.knowledge import documents

STARTER = Path(__file__).with_name("starter")


def starter_documents() -> list[tuple[str, str, bytes]]:
    """(title, filename, content) of each starter document; the title is its first heading."""
    found = []
    for path in sorted(STARTER.glob("*.md")):
        content = path.read_bytes()
        heading = re.search(r"^# (.+)$", content.decode(), re.M)
        found.append((heading.group(1).strip() if heading else path.stem, path.name, content))
    return found


async def seed(services: Services, institution_code: str = "MFGH") -> int:
    """Upload the starter documents unless the institution has a knowledge base; returns how many."""
    async with services.db.connect() as conn:
        institution_id = (await conn.execute(sa.select(institutions.c.id)
                                             .where(institutions.c.code == institution_code))).scalar_one()
        if (await conn.execute(sa.select(knowledge_documents.c.id)
                               .where(knowledge_documents.c.institution_id == institution_id).limit(1))).first():
            return 0
        admin_id = (await conn.execute(sa.select(users.c.id).where(users.c.institution_id == institution_id,
                                                                   users.c.role == "admin").limit(1))).scalar_one()
    for title, filename, content in starter_documents():
        await documents.upload(services.db, services.objects, services.bus, services.catalogue, institution_id,
                               admin_id, documents.Upload(title=title, filename=filename, content=content),
                               max_bytes=services.settings.knowledge_max_document_bytes)
    return len(starter_documents())
