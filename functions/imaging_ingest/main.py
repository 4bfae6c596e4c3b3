"""imaging_ingest: DICOM uploads — one instance, a multipart batch, or DICOMweb STOW-RS (HTTP).

The body is streamed to the object store part by part (never a whole file in memory) and
each instance answers on its own: stored, duplicate (same SOP Instance UID, nothing
changed) or rejected with a reason. Use cases: ``medflow.imaging.upload``, ``.ingest``.
"""

from __future__ import annotations

from medflow.audit.trail import audit
from medflow.auth.principal import STAFF
from medflow.imaging.upload import ACCEPTED, ingest_body
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import Call, HttpFunction, ResponseModel

spec = HttpFunction("imaging_ingest", "DICOM uploads: single instances, multipart batches, STOW-RS")
SOURCE = "/medflow/imaging_ingest"
UPLOAD_LIMIT = 64 * 1_073_741_824     # the operation's ceiling; MEDFLOW_IMAGING_MAX_UPLOAD_BYTES is the real bound


class InstanceResult(ResponseModel):
    status: str
    sop_instance_uid: str | None = None
    study_uid: str | None = None
    series_uid: str | None = None
    reason: str | None = None
    detail: str | None = None


class UploadResult(ResponseModel):
    stored: int
    duplicates: int
    rejected: int
    instances: list[InstanceResult]


async def _upload(call: Call) -> UploadResult:
    me, settings = call.caller(), call.services.settings
    declared = call.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.imaging_max_upload_bytes:
        from medflow.errors import too_large
        raise too_large(settings.imaging_max_upload_bytes)
    outcomes = await ingest_body(call.services, me.institution_id, call.headers.get("content-type", ""), call.stream)
    result = UploadResult(stored=sum(o.status == "stored" for o in outcomes),
                          duplicates=sum(o.status == "duplicate" for o in outcomes),
                          rejected=sum(o.status == "rejected" for o in outcomes),
                          instances=[InstanceResult(**vars(o)) for o in outcomes])
    await audit(call.services, source=SOURCE, action="imaging.uploaded",
                resource_type="imaging_upload", outcome="success", actor_id=me.user_id, actor_role=me.role,
                institution_id=me.institution_id,
                details={"stored": result.stored, "duplicates": result.duplicates, "rejected": result.rejected})
    return result


@spec.operation("POST", "/instances", access=STAFF, response=UploadResult, consumes=ACCEPTED,
                max_body_bytes=UPLOAD_LIMIT, errors=(413, 415), summary="Upload DICOM instances")
async def upload(call: Call) -> UploadResult:
    """``application/dicom`` (one instance), ``multipart/related; type="application/dicom"`` or
    ``multipart/form-data`` (many). Each instance is stored, a duplicate, or rejected with
    its reason (not-dicom, truncated, missing-uid, malformed-dicom, too-large, ...)."""
    return await _upload(call)


@spec.operation("POST", "/studies", access=STAFF, response=UploadResult, consumes=("multipart/related",),
                max_body_bytes=UPLOAD_LIMIT, errors=(413, 415), summary="Store instances (DICOMweb STOW-RS)")
async def stow(call: Call) -> UploadResult:
    """DICOMweb STOW-RS: ``multipart/related; type="application/dicom"``."""
    return await _upload(call)


imaging_ingest = entrypoint(spec)
