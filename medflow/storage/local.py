"""Embedded object store: a local folder, atomic writes, HMAC-signed expiring read URLs.

Objects live at ``<root>/<bucket>/<key>`` with a sidecar ``.meta.json`` in a parallel
tree. Signed URLs point at the one-process server's ``/objects/`` route, which checks the
signature and expiry before streaming (see ``verify_signed_path``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import AsyncIterator, BinaryIO
from urllib.parse import quote, urlencode

from medflow.storage.ports import BUCKETS, ObjectInfo, ObjectNotFound, check_key

_META = ".meta"
_TMP = ".tmp"


def sign_object_path(key_bytes: bytes, bucket: str, key: str, expires: int, filename: str | None) -> str:
    message = f"{bucket}\n{key}\n{expires}\n{filename or ''}".encode()
    return hmac.new(key_bytes, message, hashlib.sha256).hexdigest()


class LocalObjectStore:
    def __init__(self, root: Path, signing_key: bytes, base_url: str) -> None:
        self._root = root
        self._signing_key = signing_key
        self._base_url = base_url.rstrip("/")

    def _path(self, bucket: str, key: str) -> Path:
        check_key(bucket, key)
        return self._root / bucket / key

    def _meta_path(self, bucket: str, key: str) -> Path:
        return self._root / _META / bucket / (key + ".json")

    async def ensure_buckets(self) -> None:
        for bucket in BUCKETS:
            (self._root / bucket).mkdir(parents=True, exist_ok=True)
            (self._root / _META / bucket).mkdir(parents=True, exist_ok=True)
        (self._root / _TMP).mkdir(parents=True, exist_ok=True)

    def _write(self, bucket: str, key: str, data: bytes | BinaryIO, content_type: str, metadata: dict[str, str] | None) -> ObjectInfo:
        path = self._path(bucket, key)
        (self._root / _TMP).mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        md5 = hashlib.md5(usedforsecurity=False)
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self._root / _TMP)
        try:
            with os.fdopen(fd, "wb") as out:
                chunks = [data] if isinstance(data, (bytes, bytearray)) else iter(lambda: data.read(1 << 20), b"")
                for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                    md5.update(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            info = ObjectInfo(bucket, key, size, md5.hexdigest(), content_type, datetime.now(timezone.utc), digest.hexdigest())
            meta = self._meta_path(bucket, key)
            meta.parent.mkdir(parents=True, exist_ok=True)
            meta_tmp = meta.with_suffix(".json.tmp")
            meta_tmp.write_text(json.dumps({"content_type": content_type, "etag": info.etag, "sha256": info.sha256,
                                            "metadata": metadata or {}}))
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)          # the object appears whole or not at all
            os.replace(meta_tmp, meta)
            return info
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _info(self, bucket: str, key: str) -> ObjectInfo:
        path = self._path(bucket, key)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ObjectNotFound(f"{bucket}/{key}") from None
        if not path.is_file():
            raise ObjectNotFound(f"{bucket}/{key}")
        try:
            meta = json.loads(self._meta_path(bucket, key).read_text())
        except FileNotFoundError:
            meta = {"content_type": "application/octet-stream", "etag": "", "sha256": None}
        return ObjectInfo(bucket, key, stat.st_size, meta["etag"], meta["content_type"],
                          datetime.fromtimestamp(stat.st_mtime, timezone.utc), meta.get("sha256"))

    async def put(self, bucket: str, key: str, data: bytes | BinaryIO, content_type: str = "application/octet-stream",
                  metadata: dict[str, str] | None = None) -> ObjectInfo:
        return await asyncio.to_thread(self._write, bucket, key, data, content_type, metadata)

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        return await asyncio.to_thread(self._info, bucket, key)

    async def get(self, bucket: str, key: str) -> bytes:
        path = self._path(bucket, key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(f"{bucket}/{key}") from None

    async def stream(self, bucket: str, key: str, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        path = self._path(bucket, key)
        try:
            handle = await asyncio.to_thread(open, path, "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(f"{bucket}/{key}") from None
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def delete(self, bucket: str, key: str) -> bool:
        path = self._path(bucket, key)

        def remove() -> bool:
            self._meta_path(bucket, key).unlink(missing_ok=True)
            try:
                path.unlink()
                return True
            except FileNotFoundError:
                return False

        return await asyncio.to_thread(remove)

    async def list(self, bucket: str, prefix: str = "", limit: int = 1000) -> list[ObjectInfo]:
        root = self._root / bucket

        def scan() -> list[ObjectInfo]:
            keys = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
            return [self._info(bucket, k) for k in keys if k.startswith(prefix)][:limit]

        check_key(bucket, "x")
        return await asyncio.to_thread(scan)

    async def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> ObjectInfo:
        info = await self.head(src_bucket, src_key)

        def do_copy() -> ObjectInfo:
            with open(self._path(src_bucket, src_key), "rb") as src:
                return self._write(dst_bucket, dst_key, src, info.content_type, None)

        return await asyncio.to_thread(do_copy)

    async def signed_url(self, bucket: str, key: str, ttl_s: int, filename: str | None = None) -> str:
        await self.head(bucket, key)
        expires = int(time.time()) + ttl_s
        params = {"expires": str(expires), "sig": sign_object_path(self._signing_key, bucket, key, expires, filename)}
        if filename:
            params["filename"] = filename
        return f"{self._base_url}/objects/{bucket}/{quote(key)}?{urlencode(params)}"

    def verify_signature(self, bucket: str, key: str, expires: str, sig: str, filename: str | None) -> bool:
        """True when the signature matches and the URL has not expired."""
        try:
            expires_at = int(expires)
        except ValueError:
            return False
        expected = sign_object_path(self._signing_key, bucket, key, expires_at, filename)
        return hmac.compare_digest(expected, sig) and expires_at >= int(time.time())

    async def ping(self) -> bool:
        return self._root.is_dir()

    async def close(self) -> None:
        return None

    def wipe(self) -> None:
        """Remove everything (tests only)."""
        shutil.rmtree(self._root, ignore_errors=True)
