"""A fresh world for a fault test on the real servers: its own MariaDB database (+ Redis,
MinIO, Kafka: the shared test broker or a private one the test may kill), one institution,
one patient and ``rows`` CT cases of that patient."""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa

from conftest import create_mysql_database, delete_topics, drop_mysql_database, real_settings_env, unique
from jobs_support import insert_cases
from medflow.auth.principal import Principal
from medflow.bootstrap import build_services
from medflow.config import Settings
from medflow.db import migrate
from medflow.demo import seed_institutions
from medflow.records.patients import NewPatient, register_patient


@asynccontextmanager
async def world(tmp_path: Path, kafka_bootstrap: str | None = None, rows: int = 0, **settings: str):
    """-> (services, settings env, an admin principal, the case ids); ``settings`` adds
    MEDFLOW_* variables."""
    url = create_mysql_database()
    env = {**real_settings_env(url, unique("f")), **settings}
    if kafka_bootstrap:
        env["MEDFLOW_KAFKA_BOOTSTRAP"] = kafka_bootstrap
    migrate.upgrade(url)
    settings = Settings(**{k.removeprefix("MEDFLOW_").lower(): v for k, v in env.items()}, data_dir=tmp_path / "data")
    services = build_services(settings)
    try:
        await seed_institutions(services)
        async with services.db.connect() as conn:
            institution_id = (await conn.execute(sa.text("SELECT id FROM institutions ORDER BY code LIMIT 1"))).scalar_one()
        p = await register_patient(services.db, institution_id, NewPatient(mrn="F-1", display_name="Fault Patient"))
        ids = await insert_cases(services.db, institution_id, p.id, rows, modality="CT") if rows else []
        yield services, env, Principal("01JFAULTADMIN0000000000000", "admin", institution_id), ids
    finally:
        await services.close()
        delete_topics(env["MEDFLOW_KAFKA_BOOTSTRAP"], env["MEDFLOW_KAFKA_NAMESPACE"] + ".")
        drop_mysql_database(url)
