"""Keyset pagination: opaque cursors that carry the last row's sort key, never an OFFSET."""

from __future__ import annotations

import base64
import json
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
