"""The object store contract, held by the local folder and by MinIO (S3) alike."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from medflow.storage.local import LocalObjectStore
from medflow.storage.ports import InvalidObjectKey, ObjectNotFound

BIG = 12 * (1 << 20)   # bigger than one stream chunk (1 MiB) and than one S3 multipart part (8 MiB)


def big_payload() -> bytes:
    return random.Random(42).randbytes(BIG)


class OneWayStream(io.RawIOBase):
    """A stream that can only be read forward, like a request body or a pipe."""

    def __init__(self, data: bytes) -> None:
        self._source = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._source.read(size)


async def read_streamed(store, bucket: str, key: str) -> bytes:
    chunks = [chunk async for chunk in store.stream(bucket, key)]
    assert len(chunks) > 1
    return b"".join(chunks)


async def test_put_get_head_round_trip(object_store):
    data = b"DICM" * 1000

    put = await object_store.put("dicom", "studies/s1/i1.dcm", data, content_type="application/dicom")
    head = await object_store.head("dicom", "studies/s1/i1.dcm")

    assert await object_store.get("dicom", "studies/s1/i1.dcm") == data
    assert (head.bucket, head.key, head.size, head.content_type) == ("dicom", "studies/s1/i1.dcm", len(data), "application/dicom")
    assert head.etag == put.etag == hashlib.md5(data).hexdigest()
    assert head.sha256 == put.sha256 == hashlib.sha256(data).hexdigest()
    assert head.modified_at.tzinfo is not None


async def test_put_overwrites_an_object_whole(object_store):
    await object_store.put("renders", "r/1.png", b"old", content_type="image/png")
    await object_store.put("renders", "r/1.png", b"newer", content_type="image/png")

    assert await object_store.get("renders", "r/1.png") == b"newer"
    assert (await object_store.head("renders", "r/1.png")).size == 5


async def test_big_file_is_put_and_read_back_as_streams(object_store, tmp_path):
    data = big_payload()
    path = tmp_path / "big.bin"
    path.write_bytes(data)

    with path.open("rb") as file:
        put = await object_store.put("exports", "big/file.bin", file)
    streamed = await read_streamed(object_store, "exports", "big/file.bin")

    assert put.size == BIG
    assert hashlib.sha256(streamed).hexdigest() == hashlib.sha256(data).hexdigest() == put.sha256
    assert (await object_store.head("exports", "big/file.bin")).sha256 == put.sha256


async def test_a_forward_only_stream_is_stored_and_its_hash_returned(object_store):
    data = big_payload()

    put = await object_store.put("archive", "pipe/file.bin", OneWayStream(data))

    assert put.size == BIG and put.sha256 == hashlib.sha256(data).hexdigest()
    assert await read_streamed(object_store, "archive", "pipe/file.bin") == data


async def test_list_by_prefix_in_key_order_with_limit(object_store):
    for key in ("p/b", "p/a/2", "p/c", "p/a/1", "q/a"):
        await object_store.put("knowledge", key, key.encode())

    listed = await object_store.list("knowledge", prefix="p/")
    limited = await object_store.list("knowledge", prefix="p/", limit=2)

    assert [o.key for o in listed] == ["p/a/1", "p/a/2", "p/b", "p/c"]
    assert [o.size for o in listed] == [5, 5, 3, 3]
    assert [o.key for o in limited] == ["p/a/1", "p/a/2"]
    assert [o.key for o in await object_store.list("knowledge")] == ["p/a/1", "p/a/2", "p/b", "p/c", "q/a"]
    assert await object_store.list("knowledge", prefix="none/") == []


async def test_delete_reports_whether_something_was_removed(object_store):
    await object_store.put("dicom", "d/1", b"x")

    assert await object_store.delete("dicom", "d/1") is True
    assert await object_store.delete("dicom", "d/1") is False
    with pytest.raises(ObjectNotFound):
        await object_store.head("dicom", "d/1")
    with pytest.raises(ObjectNotFound):
        await object_store.get("dicom", "d/1")
    with pytest.raises(ObjectNotFound):
        await read_streamed(object_store, "dicom", "d/1")


async def test_copy_keeps_content_and_content_type(object_store):
    await object_store.put("dicom", "src/1", b"payload", content_type="application/dicom")

    copied = await object_store.copy("dicom", "src/1", "archive", "dst/1")

    assert (copied.bucket, copied.key, copied.size, copied.content_type) == ("archive", "dst/1", 7, "application/dicom")
    assert await object_store.get("archive", "dst/1") == b"payload"
    assert await object_store.get("dicom", "src/1") == b"payload"
    with pytest.raises(ObjectNotFound):
        await object_store.copy("dicom", "missing", "archive", "dst/2")


@pytest.mark.parametrize("bucket, key", [
    ("dicom", "../x"), ("dicom", "/abs"), ("dicom", "a//b"), ("dicom", "a/./b"), ("dicom", "a/../../b"),
    ("dicom", ""), ("dicom", "a b"), ("secrets", "a"), ("", "a"),
])
async def test_unsafe_keys_and_unknown_buckets_are_rejected(object_store, bucket, key):
    for operation in (lambda: object_store.put(bucket, key, b"x"), lambda: object_store.head(bucket, key),
                      lambda: object_store.get(bucket, key), lambda: object_store.delete(bucket, key),
                      lambda: object_store.signed_url(bucket, key, 60)):
        with pytest.raises(InvalidObjectKey):
            await operation()


async def test_signed_url_needs_an_existing_object(object_store):
    with pytest.raises(ObjectNotFound):
        await object_store.signed_url("dicom", "missing", 60)


async def test_signed_url_works_until_it_expires(object_store):
    data = b"render bytes"
    await object_store.put("renders", "r/signed.png", data, content_type="image/png")

    url = await object_store.signed_url("renders", "r/signed.png", ttl_s=60, filename="scan.png")
    short_url = await object_store.signed_url("renders", "r/signed.png", ttl_s=1)

    if isinstance(object_store, LocalObjectStore):
        await check_local_signature(object_store, url, short_url)
    else:
        await check_s3_signature(url, short_url, data)


async def check_s3_signature(url: str, short_url: str, data: bytes) -> None:
    async with httpx.AsyncClient() as http:
        fetched = await http.get(url)
        assert fetched.status_code == 200 and fetched.content == data
        assert "scan.png" in fetched.headers["content-disposition"]
        assert (await http.get(url.split("?", 1)[0])).status_code == 403
        assert (await http.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0"))).status_code == 403
        await asyncio.sleep(2.2)
        assert (await http.get(short_url)).status_code == 403


async def check_local_signature(store: LocalObjectStore, url: str, short_url: str) -> None:
    def verify(of_url: str, **changes: str) -> bool:
        parts = urlsplit(of_url)
        _, _, bucket, key = parts.path.split("/", 3)
        fields = {"bucket": bucket, "key": unquote(key),
                  **{name: values[0] for name, values in parse_qs(parts.query).items()}, **changes}
        return store.verify_signature(fields["bucket"], fields["key"], fields["expires"], fields["sig"], fields.get("filename"))

    assert verify(url)
    assert verify(short_url)
    assert not verify(url, sig="0" * 64)
    assert not verify(url, key="r/other.png")
    assert not verify(url, filename="other.png")
    assert not verify(url, expires=str(int(parse_qs(urlsplit(url).query)["expires"][0]) + 3600))
    await asyncio.sleep(2.2)
    assert not verify(short_url)


class ChangesAfterHashing(io.BytesIO):
    """A file whose bytes change after they were first read to the end (a spool file
    overwritten, a disk error): what is sent is not what was hashed."""

    def __init__(self, first: bytes, then: bytes) -> None:
        super().__init__(first)
        self._then = then

    def seek(self, offset: int, whence: int = 0) -> int:
        if self._then is not None and offset == 0 and whence == 0 and self.tell() == len(self._then):
            super().seek(0)
            self.write(self._then)
            self._then = None
        return super().seek(offset, whence)


@pytest.mark.parametrize("object_store", ["real"], indirect=True)   # the local folder hashes as it writes
async def test_s3_refuses_an_upload_whose_bytes_differ_from_their_hash_and_stores_nothing(object_store):
    """MinIO checks each object against the SHA-256 the store computed before sending."""
    from medflow.errors import TransientError
    with pytest.raises(TransientError, match="corrupted upload"):
        await object_store.put("dicom", "inst/changed.dcm", ChangesAfterHashing(b"A" * 4096, b"B" * 4096),
                               "application/dicom")
    with pytest.raises(ObjectNotFound):
        await object_store.head("dicom", "inst/changed.dcm")
    info = await object_store.put("dicom", "inst/changed.dcm", io.BytesIO(b"B" * 4096), "application/dicom")
    assert info.sha256 == hashlib.sha256(b"B" * 4096).hexdigest()
