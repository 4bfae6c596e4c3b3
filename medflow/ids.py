"""Identifiers and time: sortable ids and timezone-aware UTC timestamps."""

from __future__ import annotations

from datetime import datetime, timezone

from ulid import ULID


def new_id() -> str:
    """A 26-character ULID: time-ordered, random-suffixed (no hot spot on TiDB)."""
    return str(ULID())


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
