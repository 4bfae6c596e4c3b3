"""The SQL adapter: one async engine per process, transactions as context managers.

URLs may name either driver family; the async engine uses aiomysql (built on PyMySQL) or
aiosqlite, migrations use the synchronous PyMySQL / sqlite3 drivers.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

_ASYNC_DRIVERS = {"mysql": "mysql+aiomysql", "sqlite": "sqlite+aiosqlite"}
_SYNC_DRIVERS = {"mysql": "mysql+pymysql", "sqlite": "sqlite"}


def _with_driver(url: str, drivers: dict[str, str]) -> sa.URL:
    parsed = make_url(url)
    parsed = parsed.set(drivername=drivers[parsed.get_backend_name()])
    if parsed.get_backend_name() == "mysql":
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def async_url(url: str) -> sa.URL:
    return _with_driver(url, _ASYNC_DRIVERS)


def sync_url(url: str) -> sa.URL:
    return _with_driver(url, _SYNC_DRIVERS)


def ensure_sqlite_dir(url: str | sa.URL) -> None:
    """Create the folder of a SQLite file (the embedded default lives under data_dir)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    """The process's SQL engine. Use ``transaction()`` for writes, ``connect()`` for reads."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        target = async_url(url)
        self.dialect = target.get_backend_name()
        options: dict = {"echo": echo}
        if self.dialect == "mysql":
            options.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800)
        else:
            ensure_sqlite_dir(target)
        self.engine: AsyncEngine = create_async_engine(target, **options)
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back on any error."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return True

    async def close(self) -> None:
        await self.engine.dispose()


def is_unique_violation(exc: BaseException) -> bool:
    """True for a duplicate-key error on MySQL/TiDB (1062) or SQLite (UNIQUE constraint)."""
    if not isinstance(exc, sa.exc.IntegrityError):
        return False
    orig = exc.orig
    code = getattr(orig, "args", [None])[0]
    return code == 1062 or "UNIQUE constraint failed" in str(orig)
