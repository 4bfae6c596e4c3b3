"""Keyset pagination: opaque cursors that carry the last row's sort key, never an OFFSET."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Any

from medflow.errors import bad_request

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The sort key a cursor holds; a 400 Problem for anything not made by encode_cursor."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The cursor is not valid.", code="invalid-cursor") from None
    if not isinstance(values, list) or len(values) != arity:
        raise bad_request("The cursor is not valid.", code="invalid-cursor")
    return values


_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def encode_time_cursor(at: datetime, row_id: str) -> str:
    """A cursor for pages ordered by (a timestamp, a ULID id)."""
    return encode_cursor([at.isoformat(), row_id])


def decode_time_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The (timestamp, id) a cursor carries; 400 for anything ``encode_time_cursor`` did not make."""
    if not cursor:
        return None
    at_text, row_id = decode_cursor(cursor, 2)
    try:
        at = datetime.fromisoformat(at_text)
    except (TypeError, ValueError):
        at = None
    if at is None or at.tzinfo is None or not isinstance(row_id, str) or not _ULID.match(row_id):
        raise bad_request("The cursor is not valid.", code="invalid-cursor")
    return at, row_id
