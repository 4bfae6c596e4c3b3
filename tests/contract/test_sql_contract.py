"""The SQL adapter and the migrations behave the same on SQLite and MariaDB."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from medflow.db import migrate
from medflow.db.engine import is_unique_violation, sync_url
from medflow.db.schema import audit_log, departments, institutions, metadata
from medflow.ids import new_id, utcnow


def _schema_diff(url: str) -> list:
    engine = sa.create_engine(sync_url(url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    engine.dispose()
    return diff


def _institution(code: str = "H1", name: str = "Hospital") -> dict:
    now = utcnow()
    return {"id": new_id(), "code": code, "name": name, "created_at": now, "updated_at": now}


def test_upgrade_head_on_empty_database_matches_the_declared_schema(empty_sql_url):
    migrate.upgrade(empty_sql_url)
    assert migrate.current(empty_sql_url) == migrate.head()
    assert _schema_diff(empty_sql_url) == []


def test_upgrade_from_the_previous_revision_matches_the_declared_schema(empty_sql_url):
    migrate.upgrade(empty_sql_url, migrate.previous(migrate.head()))
    migrate.upgrade(empty_sql_url)
    assert migrate.current(empty_sql_url) == migrate.head()
    assert _schema_diff(empty_sql_url) == []


def test_upgrade_from_the_first_revision_keeps_existing_rows(empty_sql_url):
    migrate.upgrade(empty_sql_url, "0001")
    engine = sa.create_engine(sync_url(empty_sql_url))
    row = _institution("KEEP", "Kept Hospital")
    with engine.begin() as conn:
        conn.execute(institutions.insert().values(**row))
    engine.dispose()

    migrate.upgrade(empty_sql_url)

    engine = sa.create_engine(sync_url(empty_sql_url))
    with engine.connect() as conn:
        names = conn.execute(sa.select(institutions.c.name)).scalars().all()
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert names == ["Kept Hospital"]
    assert {"users", "audit_log", "credentials", "refresh_tokens"} <= tables
    assert migrate.current(empty_sql_url) == migrate.head()


def test_downgrade_then_upgrade_again(empty_sql_url):
    migrate.upgrade(empty_sql_url)
    migrate.downgrade(empty_sql_url, "0001")
    assert migrate.current(empty_sql_url) == "0001"
    migrate.upgrade(empty_sql_url)
    assert _schema_diff(empty_sql_url) == []


async def test_transaction_commits_or_rolls_back_as_a_whole(database):
    async with database.transaction() as conn:
        await conn.execute(institutions.insert().values(**_institution("A")))
    with pytest.raises(RuntimeError):
        async with database.transaction() as conn:
            await conn.execute(institutions.insert().values(**_institution("B")))
            raise RuntimeError("crash between two writes")
    async with database.connect() as conn:
        codes = (await conn.execute(sa.select(institutions.c.code))).scalars().all()
    assert codes == ["A"]


async def test_duplicate_key_is_recognised_on_every_engine(database):
    async with database.transaction() as conn:
        await conn.execute(institutions.insert().values(**_institution("DUP")))
    with pytest.raises(sa.exc.IntegrityError) as caught:
        async with database.transaction() as conn:
            await conn.execute(institutions.insert().values(**_institution("DUP")))
    assert is_unique_violation(caught.value)


async def test_foreign_keys_are_enforced(database):
    now = utcnow()
    with pytest.raises(sa.exc.IntegrityError) as caught:
        async with database.transaction() as conn:
            await conn.execute(departments.insert().values(id=new_id(), institution_id=new_id(), code="X", name="X",
                                                           created_at=now, updated_at=now))
    assert not is_unique_violation(caught.value)


async def test_chinese_names_and_emoji_round_trip(database):
    name = "北京协和医院 · 心内科 🫀"
    async with database.transaction() as conn:
        await conn.execute(institutions.insert().values(**_institution("CN", name)))
    async with database.connect() as conn:
        stored = (await conn.execute(sa.select(institutions.c.name).where(institutions.c.code == "CN"))).scalar_one()
    assert stored == name


async def test_timestamps_come_back_as_the_same_utc_instant_with_microseconds(database):
    moment = datetime(2026, 3, 1, 8, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))
    row = _institution("TZ")
    row["created_at"] = moment
    async with database.transaction() as conn:
        await conn.execute(institutions.insert().values(**row))
    async with database.connect() as conn:
        stored = (await conn.execute(sa.select(institutions.c.created_at))).scalar_one()
    assert stored == moment and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)


async def test_json_details_round_trip(database):
    now = utcnow()
    details = {"ids": ["a", "b"], "count": 2, "nested": {"ok": True}}
    async with database.transaction() as conn:
        await conn.execute(audit_log.insert().values(id=new_id(), event_id="e1", occurred_at=now, recorded_at=now,
                                                     action="x.y", resource_type="case", outcome="success",
                                                     source="/medflow/test", details=details))
    async with database.connect() as conn:
        stored = (await conn.execute(sa.select(audit_log.c.details))).scalar_one()
    assert stored == details
