"""What a patient may read of their records: the summaries a doctor released, cached per patient.

Released summaries are read-mostly (a patient opens the app far more often than a doctor
releases a result), so they are served cache-aside (``medflow/cache/aside.py``) in one scope
per patient. Every change to a case of the patient (an edit, a release, a delete) forgets
that scope, in the use case that makes the change.
"""

from __future__ import annotations

from medflow.cache.aside import CacheAside, CacheKind, as_aside
from medflow.cache.ports import Cache

RELEASED = CacheKind("released_summaries", ttl_min_s=300, ttl_max_s=900, negative_ttl_s=30)


def released_scope(institution_id: str, patient_id: str) -> str:
    return f"{institution_id}:{patient_id}"


async def forget_released(cache: Cache | CacheAside, institution_id: str, patient_id: str) -> None:
    """The patient's next read of their released summaries comes from SQL."""
    await as_aside(cache).invalidate(RELEASED, released_scope(institution_id, patient_id))
