"""Building imaging test data: generated DICOM instances and multipart bodies."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import httpx

from medflow.dicom.generate import Spec, make


def instance(**fields) -> bytes:
    return make(Spec(**fields))


def multipart(parts: list[tuple[bytes, dict[str, str]]], subtype: str = "related") -> tuple[bytes, str]:
    """(body, content type) of a multipart body; each part is (content, extra headers)."""
    boundary = "mf" + secrets.token_hex(8)
    chunks = []
    for content, headers in parts:
        head = {"Content-Type": "application/dicom", **headers}
        chunks.append(f"--{boundary}\r\n".encode() + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode()
                      + b"\r\n" + content + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    kind = 'multipart/related; type="application/dicom"' if subtype == "related" else "multipart/form-data"
    return b"".join(chunks), f"{kind}; boundary={boundary}"


async def fetch_signed(platform, url: str) -> httpx.Response:
    """Follow a signed URL: the embedded store's through the app, S3's over the network."""
    if platform.kind == "embedded":
        parts = urlsplit(url)
        return await platform.get(parts.path + "?" + parts.query)
    async with httpx.AsyncClient() as client:
        return await client.get(url)
