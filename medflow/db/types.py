"""Column types that mean the same on MySQL, TiDB and SQLite."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import mysql


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC in Python, naive UTC with microseconds in the database."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect):
        return value.replace(tzinfo=timezone.utc) if value is not None else None


def id_column(name: str = "id", *args, **kwargs) -> sa.Column:
    """A 26-character ULID key column (see medflow.ids.new_id)."""
    return sa.Column(name, sa.String(26), *args, **kwargs)
