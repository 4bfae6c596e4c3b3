"""S3 object store (boto3): MinIO by default, any S3-compatible store in practice.

Logical bucket ``dicom`` lives in the real bucket ``<bucket_prefix>-dicom``. Every boto3
call runs in a worker thread so the event loop never blocks.

- ``put`` streams through boto3's managed upload: objects above 8 MiB go multipart, one
  part in memory per worker, never the whole file; S3 makes the object visible whole or
  not at all. A seekable stream or bytes under 8 MiB go up in one ``PutObject`` instead
  (no transfer threads, no HEAD afterwards: the returned time is the client's clock), with
  its SHA-256 as the object checksum (the store verifies the bytes it got against it). The
  SHA-256 also goes into the object metadata (``x-amz-meta-sha256``) whenever
  it is known before the upload: for bytes, and for seekable streams (one extra local
  read pass, then a seek back). A non-seekable stream is hashed while it is uploaded, so
  its SHA-256 is only in the ``ObjectInfo`` that ``put`` returns; ``head`` gives None.
- ETags are S3's: the MD5 of the content for single-part objects, ``<md5>-<parts>`` for
  multipart ones.
- ``list`` answers from the listing alone: key, size, ETag and time, but no content type
  (empty) and no SHA-256; ``head`` an object for those.
- ``delete`` checks existence first (S3 deletes are silent), so two concurrent deletes may
  both answer True.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import io
from datetime import datetime, timezone
from typing import Any, AsyncIterator, BinaryIO, Callable
from urllib.parse import quote

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as EndpointError

from medflow.errors import TransientError
from medflow.storage.ports import BUCKETS, ObjectInfo, ObjectNotFound, check_key

MIB = 1 << 20
NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "NotFound", "404"}
CORRUPTED_CODES = {"BadDigest", "XAmzContentChecksumMismatch", "InvalidDigest"}
TRANSIENT_CODES = {"SlowDown", "ServiceUnavailable", "RequestTimeout", "InternalError", "XMinioServerNotInitialized"}


class S3ObjectStore:
    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str, bucket_prefix: str) -> None:
        self._region = region
        self._prefix = bucket_prefix
        config = Config(signature_version="s3v4", s3={"addressing_style": "path"}, region_name=region,
                        retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=60,
                        max_pool_connections=32)
        session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                        region_name=region)
        self._s3 = session.client("s3", endpoint_url=endpoint, config=config)
        self._transfer = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=4)

    def bucket_name(self, bucket: str) -> str:
        return f"{self._prefix}-{bucket}"

    async def ensure_buckets(self) -> None:
        await asyncio.to_thread(self._create_buckets)

    async def put(self, bucket: str, key: str, data: bytes | BinaryIO, content_type: str = "application/octet-stream",
                  metadata: dict[str, str] | None = None) -> ObjectInfo:
        check_key(bucket, key)
        return await asyncio.to_thread(self._put, bucket, key, data, content_type, metadata or {})

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        check_key(bucket, key)
        return await asyncio.to_thread(self._head, bucket, key)

    async def get(self, bucket: str, key: str) -> bytes:
        check_key(bucket, key)
        response = await self._call(self._s3.get_object, Bucket=self.bucket_name(bucket), Key=key)
        body = response["Body"]
        try:
            return await self._call(body.read)
        finally:
            body.close()

    async def stream(self, bucket: str, key: str, chunk_size: int = MIB) -> AsyncIterator[bytes]:
        check_key(bucket, key)
        response = await self._call(self._s3.get_object, Bucket=self.bucket_name(bucket), Key=key)
        body = response["Body"]
        try:
            while chunk := await self._call(body.read, chunk_size):
                yield chunk
        finally:
            body.close()

    async def delete(self, bucket: str, key: str) -> bool:
        try:
            await self.head(bucket, key)
        except ObjectNotFound:
            return False
        await self._call(self._s3.delete_object, Bucket=self.bucket_name(bucket), Key=key)
        return True

    async def list(self, bucket: str, prefix: str = "", limit: int = 1000) -> list[ObjectInfo]:
        check_key(bucket, "x")
        return await asyncio.to_thread(self._list, bucket, prefix, limit)

    async def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> ObjectInfo:
        """Server-side copy (multipart for big objects) keeping content type and metadata."""
        check_key(src_bucket, src_key)
        check_key(dst_bucket, dst_key)
        source = {"Bucket": self.bucket_name(src_bucket), "Key": src_key}
        await self._call(self._s3.copy, source, self.bucket_name(dst_bucket), dst_key, Config=self._transfer)
        return await self.head(dst_bucket, dst_key)

    async def signed_url(self, bucket: str, key: str, ttl_s: int, filename: str | None = None) -> str:
        """A presigned GET (signature v4) valid ``ttl_s`` seconds, as a download when ``filename`` is given."""
        await self.head(bucket, key)
        params = {"Bucket": self.bucket_name(bucket), "Key": key}
        if filename:
            params["ResponseContentDisposition"] = _attachment(filename)
        return await self._call(self._s3.generate_presigned_url, "get_object", Params=params, ExpiresIn=ttl_s)

    async def ping(self) -> bool:
        try:
            await self._call(self._s3.head_bucket, Bucket=self.bucket_name(BUCKETS[0]))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        await asyncio.to_thread(self._s3.close)

    # -- blocking helpers (run in threads) -----------------------------------------------

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(_mapped_errors, functools.partial(fn, *args, **kwargs))

    def _create_buckets(self) -> None:
        location = {} if self._region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": self._region}}
        for bucket in BUCKETS:
            try:
                _mapped_errors(functools.partial(self._s3.create_bucket, Bucket=self.bucket_name(bucket), **location))
            except ClientError as exc:
                if _error_code(exc) != "BucketAlreadyOwnedByYou":
                    raise

    def _put(self, bucket: str, key: str, data: bytes | BinaryIO, content_type: str, metadata: dict[str, str]) -> ObjectInfo:
        stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
        sha256 = _sha256_and_rewind(stream) if _seekable(stream) else None
        reader = stream if sha256 else _HashingReader(stream)
        extra = {"ContentType": content_type, "Metadata": {**metadata, **({"sha256": sha256} if sha256 else {})}}
        size = _remaining(stream) if sha256 else None
        if size is not None and size < self._transfer.multipart_threshold:
            # One PUT, no transfer-manager threads and no HEAD afterwards: the object is
            # small, its size and hash are known; S3 answers with its ETag.
            # The SHA-256 goes along as the object's checksum: the store verifies the bytes it
            # received against it (BadDigest otherwise: nothing stored), and boto3 computes
            # no checksum of its own (a CRC32 pass over the body).
            checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
            response = _mapped_errors(functools.partial(
                self._s3.put_object, Bucket=self.bucket_name(bucket), Key=key, Body=stream, ContentLength=size,
                ChecksumSHA256=checksum, **extra))
            return ObjectInfo(bucket, key, size, response["ETag"].strip('"'), content_type,
                              datetime.now(timezone.utc), sha256)
        try:
            _mapped_errors(functools.partial(self._s3.upload_fileobj, reader, self.bucket_name(bucket), key,
                                             ExtraArgs=extra, Config=self._transfer))
        except S3UploadFailedError as exc:
            raise TransientError(f"upload of an object to {bucket} failed") from exc
        info = self._head(bucket, key)
        return _with_sha256(info, sha256 or reader.hexdigest())

    def _head(self, bucket: str, key: str) -> ObjectInfo:
        response = _mapped_errors(functools.partial(self._s3.head_object, Bucket=self.bucket_name(bucket), Key=key))
        return ObjectInfo(bucket, key, response["ContentLength"], response["ETag"].strip('"'),
                          response.get("ContentType", "application/octet-stream"), response["LastModified"],
                          response.get("Metadata", {}).get("sha256"))

    def _list(self, bucket: str, prefix: str, limit: int) -> list[ObjectInfo]:
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket_name(bucket), Prefix=prefix, PaginationConfig={"MaxItems": limit, "PageSize": min(limit, 1000)})
        entries = [entry for page in _mapped_errors(lambda: list(pages)) for entry in page.get("Contents", [])]
        return sorted((_listed(bucket, e) for e in entries), key=lambda info: info.key)[:limit]


class _HashingReader(io.RawIOBase):
    """A read-only view of a stream that hashes what passes through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._digest.update(chunk)
        return chunk

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _seekable(stream: BinaryIO) -> bool:
    try:
        return stream.seekable()
    except (AttributeError, ValueError):
        return False


def _remaining(stream: BinaryIO) -> int:
    """Bytes from the position to the end of a seekable stream (the position is kept)."""
    start = stream.tell()
    end = stream.seek(0, io.SEEK_END)
    stream.seek(start)
    return end - start


def _sha256_and_rewind(stream: BinaryIO) -> str:
    start = stream.tell()
    digest = hashlib.sha256()
    while chunk := stream.read(MIB):
        digest.update(chunk)
    stream.seek(start)
    return digest.hexdigest()


def _with_sha256(info: ObjectInfo, sha256: str) -> ObjectInfo:
    return ObjectInfo(info.bucket, info.key, info.size, info.etag, info.content_type, info.modified_at, sha256)


def _listed(bucket: str, entry: dict[str, Any]) -> ObjectInfo:
    modified: datetime = entry["LastModified"]
    return ObjectInfo(bucket, entry["Key"], entry["Size"], entry.get("ETag", "").strip('"'), "", modified)


def _attachment(filename: str) -> str:
    """Content-Disposition for a download: an ASCII fallback plus the RFC 5987 UTF-8 name."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _mapped_errors(call: Callable[[], Any]) -> Any:
    """Run a boto3 call: missing objects become ObjectNotFound, outages TransientError."""
    try:
        return call()
    except ClientError as exc:
        code = _error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in NOT_FOUND_CODES:
            raise ObjectNotFound(code) from None
        if code in CORRUPTED_CODES:   # the bytes changed on the way: sending them again may work
            raise TransientError(f"the object store refused a corrupted upload: {code}") from None
        if code in TRANSIENT_CODES or status >= 500:
            raise TransientError(f"object store unavailable: {code}") from exc
        raise
    except (EndpointError, HTTPClientError, IncompleteReadError) as exc:  # refused, reset, timed out, cut short
        raise TransientError(f"object store unreachable: {type(exc).__name__}") from exc
