"""The interface of the object store, held by one contract suite for both adapters.

Buckets are logical names (``dicom``, ``renders``, ``exports``, ``models``, ``knowledge``, ``incoming``,
``archive``); the adapter maps them to real buckets (``<prefix>-<name>``). Writes are
atomic: an object is either wholly there or not there. Reads are streamed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import AsyncIterator, BinaryIO, Protocol

BUCKETS = ("dicom", "renders", "exports", "models", "knowledge", "archive", "incoming")
_KEY = re.compile(r"^[A-Za-z0-9!_.*'()\-][A-Za-z0-9!_.*'()\-/]{0,1023}$")


class ObjectNotFound(Exception):
    """No object under that bucket and key."""


class InvalidObjectKey(ValueError):
    """A key that could escape its bucket or that S3 would not accept portably."""


def check_key(bucket: str, key: str) -> None:
    """Reject unknown buckets, path traversal and keys outside the S3 safe character set."""
    if bucket not in BUCKETS:
        raise InvalidObjectKey(f"unknown bucket {bucket!r}")
    if not _KEY.match(key) or any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidObjectKey("object key is not a safe relative path")


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str
    content_type: str
    modified_at: datetime
    sha256: str | None = None


class ObjectStore(Protocol):
    async def ensure_buckets(self) -> None:
        """Create the logical buckets if missing (idempotent)."""

    async def put(self, bucket: str, key: str, data: bytes | BinaryIO, content_type: str = "application/octet-stream",
                  metadata: dict[str, str] | None = None) -> ObjectInfo:
        """Store an object atomically from bytes or a readable binary stream (streamed)."""

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        """Metadata of an object; ObjectNotFound when absent."""

    async def get(self, bucket: str, key: str) -> bytes:
        """Whole object (small objects only); ObjectNotFound when absent."""

    def stream(self, bucket: str, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """Object content in chunks; ObjectNotFound when absent."""

    async def delete(self, bucket: str, key: str) -> bool:
        """Remove; True when something was removed."""

    async def list(self, bucket: str, prefix: str = "", limit: int = 1000) -> list[ObjectInfo]:
        """Objects under ``prefix`` in key order, at most ``limit``."""

    async def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> ObjectInfo: ...

    async def signed_url(self, bucket: str, key: str, ttl_s: int, filename: str | None = None) -> str:
        """A read URL that expires after ``ttl_s`` seconds; ObjectNotFound when absent."""

    async def ping(self) -> bool: ...
    async def close(self) -> None: ...
