"""Alembic environment: URL from medflow.config (or the caller), synchronous drivers."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from medflow.config import load_settings
from medflow.db.engine import sync_url
from medflow.db.schema import metadata

config = context.config


def _url() -> str:
    given = config.attributes.get("url")
    return given or load_settings().resolved_database_url()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(sync_url(_url()), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=str(sync_url(_url())), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
