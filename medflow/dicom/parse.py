"""Reading a DICOM instance's header with pixels deferred, and checking it can be stored.

``parse_file`` reads a Part 10 file (or a bare dataset in either VR mode and endianness)
up to, but not into, large values: pixel data and other bulk elements are skipped with a
seek, so a 500 MB multi-frame costs what its header costs. It then checks what storage
needs and answers ``Parsed`` or raises ``Rejected`` with a stable reason code (never a
value from the file: it may be patient data).

Checks: a DICOM preamble or a dataset that parses; SOP Instance, SOP Class, Study and
Series UIDs present and valid (≤ 64 characters, digits and dots); fixed-size VRs whose
length is a multiple of their size (wrong VR lengths); values that lie wholly inside the
file (truncation); no deflated transfer syntax (an inflation bomb).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.valuerep import PersonName

DEFER_BYTES = 4096            # values larger than this are skipped, not read
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_FIXED_SIZE = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4, "UV": 8, "SV": 8}
DEFLATED = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1"}
_BULK_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009, 0x00420011}   # pixel data (all kinds), encapsulated document
PIXEL_DATA = 0x7FE00010


class Rejected(Exception):
    """The instance cannot be stored; ``reason`` is a stable code, ``detail`` is for people."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Parsed:
    sop_instance_uid: str
    sop_class_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax_uid: str
    patient_id: str | None
    patient_name: str | None
    patient_sex: str | None
    birth_date: date | None
    study_date: date | None
    study_time: str | None
    accession_number: str | None
    study_description: str | None
    modality: str
    series_number: int | None
    series_description: str | None
    body_part: str | None
    instance_number: int | None
    rows: int | None
    columns: int | None
    frames: int
    header: dict[str, Any]       # DICOM JSON model, bulk data left out


def read_deferred(path: str | Path) -> Dataset:
    """The dataset with values over ``DEFER_BYTES`` left on disk (pixels deferred)."""
    return pydicom.dcmread(str(path), defer_size=DEFER_BYTES, force=False)


def parse_file(path: str | Path, size: int | None = None) -> Parsed:
    """Read and check one instance; raises ``Rejected``."""
    path = Path(path)
    size = path.stat().st_size if size is None else size
    if size < 132:
        raise Rejected("not-dicom", "The file is too short to be a DICOM instance.")
    try:
        ds = read_deferred(path)
    except InvalidDicomError:
        raise Rejected("not-dicom", "The file is not DICOM (no DICM preamble).") from None
    except (EOFError, OSError, ValueError, KeyError, IndexError, TypeError, NotImplementedError) as exc:
        raise Rejected("malformed-dicom", f"The DICOM file cannot be read ({type(exc).__name__}).") from None
    syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", "") or "")
    if syntax in DEFLATED:
        raise Rejected("unsupported-transfer-syntax", "Deflated transfer syntaxes are not accepted.")
    _check_lengths(ds, size)
    try:
        return _parsed(ds, syntax)
    except Rejected:
        raise
    except Exception as exc:  # a value that does not convert: wrong length, bad encoding, ...
        raise Rejected("malformed-dicom", f"A DICOM element cannot be decoded ({type(exc).__name__}).") from None


def _check_lengths(ds: Dataset, size: int) -> None:
    """Deferred values must lie inside the file; fixed-size VRs must hold whole values."""
    for elem in ds._dict.values():  # raw elements: nothing converted yet
        if not isinstance(elem, RawDataElement):
            continue
        length = elem.length
        if elem.value is None and length != 0xFFFFFFFF and elem.value_tell + length > size:
            raise Rejected("truncated", "The file ends before one of its values does (truncated).")
        vr = elem.VR
        if vr in _FIXED_SIZE and length != 0xFFFFFFFF and length % _FIXED_SIZE[vr]:
            raise Rejected("malformed-dicom", f"Element ({elem.tag.group:04X},{elem.tag.element:04X}) has a length "
                                              f"that is not a multiple of its VR {vr}.")
    if PIXEL_DATA not in ds._dict and size and ds._dict:
        return


def _uid(ds: Dataset, keyword: str, meta: Dataset | None = None) -> str:
    value = str(ds.get(keyword, "") or (meta.get(keyword.replace("SOP", "MediaStorageSOP"), "") if meta is not None else "") or "")
    value = value.strip().rstrip("\x00")
    if not value:
        raise Rejected("missing-uid", f"{keyword} is missing.")
    if len(value) > 64 or not _UID.match(value):
        raise Rejected("invalid-uid", f"{keyword} is not a valid UID.")
    return value


def _text(ds: Dataset, keyword: str, limit: int) -> str | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, PersonName):
        text = str(value)
    elif isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value)
    text = text.strip()
    return text[:limit] or None


def _int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _date(ds: Dataset, keyword: str) -> date | None:
    value = str(ds.get(keyword, "") or "").strip()
    if len(value) == 8 and value.isdigit():
        try:
            return date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            return None
    return None


def _parsed(ds: Dataset, syntax: str) -> Parsed:
    meta = ds.file_meta if hasattr(ds, "file_meta") else None
    sop = _uid(ds, "SOPInstanceUID", meta)
    sop_class = _uid(ds, "SOPClassUID", meta)
    study = _uid(ds, "StudyInstanceUID")
    series = _uid(ds, "SeriesInstanceUID")
    if not syntax:
        syntax = "1.2.840.10008.1.2" if ds.is_implicit_VR else ("1.2.840.10008.1.2.1" if ds.is_little_endian
                                                                 else "1.2.840.10008.1.2.2")
    patient_name = _text(ds, "PatientName", 200)
    return Parsed(
        sop_instance_uid=sop, sop_class_uid=sop_class, study_uid=study, series_uid=series, transfer_syntax_uid=syntax,
        patient_id=_text(ds, "PatientID", 64), patient_name=patient_name,
        patient_sex={"M": "male", "F": "female", "O": "other"}.get(str(ds.get("PatientSex", "") or "").strip(), "unknown"),
        birth_date=_date(ds, "PatientBirthDate"), study_date=_date(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime", 16), accession_number=_text(ds, "AccessionNumber", 16),
        study_description=_text(ds, "StudyDescription", 64), modality=(_text(ds, "Modality", 16) or "OT").upper(),
        series_number=_int(ds, "SeriesNumber"), series_description=_text(ds, "SeriesDescription", 64),
        body_part=_text(ds, "BodyPartExamined", 16), instance_number=_int(ds, "InstanceNumber"),
        rows=_int(ds, "Rows"), columns=_int(ds, "Columns"), frames=max(1, _int(ds, "NumberOfFrames") or 1),
        header=header_json(ds))


def header_json(ds: Dataset) -> dict[str, Any]:
    """The DICOM JSON model of the header; bulk values (pixels, large deferred blobs) left
    out — removed from ``ds`` itself (cheaper than a copy; call it last)."""
    for tag in [tag for tag, elem in ds._dict.items()
                if int(tag) in _BULK_TAGS
                or (isinstance(elem, RawDataElement) and elem.value is None and elem.length > DEFER_BYTES)]:
        del ds._dict[tag]
    return ds.to_json_dict(bulk_data_threshold=DEFER_BYTES, bulk_data_element_handler=lambda _elem: "")
