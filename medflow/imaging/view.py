"""Authorised retrieval: signed URLs that expire within minutes, and cached renders.

Callers reach here only after the function checked their role; every lookup is scoped to
their institution (another institution's UIDs answer 404). Renders are cached in the
``renders`` bucket under a key naming the instance and every rendering parameter, and
served through a signed URL as the original is.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from medflow.dicom.render import RenderRequest, Unrenderable, render
from medflow.errors import Problem
from medflow.imaging.ingest import BUCKET
from medflow.storage.ports import ObjectNotFound

if TYPE_CHECKING:
    from medflow.bootstrap import Services

RENDERS = "renders"


ARCHIVE = "archive"


async def located(services: "Services", instance: dict) -> tuple[str, str]:
    """(bucket, key) of an instance's original: in the DICOM bucket, or in the archive tier
    once a bulk archive job moved it there (``<bucket>/<key>``, see medflow/jobs/worker.py)."""
    key = instance["object_key"]
    try:
        await services.objects.head(BUCKET, key)
        return BUCKET, key
    except ObjectNotFound:
        await services.objects.head(ARCHIVE, f"{BUCKET}/{key}")  # ObjectNotFound when in neither
        return ARCHIVE, f"{BUCKET}/{key}"


async def original_url(services: "Services", instance: dict) -> str:
    bucket, key = await located(services, instance)
    return await services.objects.signed_url(bucket, key, services.settings.signed_url_ttl_s)


def render_key(instance: dict, req: RenderRequest) -> str:
    params = f"{req.frame}|{req.window_center}|{req.window_width}|{req.size}|{req.format}"
    digest = hashlib.sha256(params.encode()).hexdigest()[:24]
    base = instance["object_key"].removesuffix(".dcm")
    return f"{base}/{digest}.{'jpg' if req.format == 'jpeg' else 'png'}"


async def rendered_url(services: "Services", instance: dict, req: RenderRequest) -> tuple[str, bool]:
    """(signed URL of the render, whether it came from the cache)."""
    key = render_key(instance, req)
    ttl = services.settings.signed_url_ttl_s
    try:
        return await services.objects.signed_url(RENDERS, key, ttl), True
    except ObjectNotFound:
        pass
    fd, name = tempfile.mkstemp(prefix="medflow-render-", suffix=".dcm")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in services.objects.stream(*await located(services, instance)):
                await asyncio.to_thread(out.write, chunk)
        try:
            image = await asyncio.to_thread(render, path, req)
        except Unrenderable as exc:
            raise Problem(422, exc.reason, exc.detail) from None
    finally:
        path.unlink(missing_ok=True)
    await services.objects.put(RENDERS, key, image, "image/jpeg" if req.format == "jpeg" else "image/png")
    return await services.objects.signed_url(RENDERS, key, ttl), False
