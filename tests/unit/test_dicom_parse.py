"""Parsing with pixels deferred, on pydicom's bundled test files and generated instances:
both VR modes and endiannesses, multi-valued and private elements, character sets, and the
bad-input rejections a sender sees as reasons."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medflow.dicom.generate import Spec, make
from medflow.dicom.parse import Rejected, parse_file


def _zipped(data: bytes) -> bytes:
    import zipfile
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.dcm", data + b"\x00" * 1_000_000)
    return out.getvalue()


def _file(tmp_path: Path, data: bytes, name: str = "x.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, syntax", [("CT_small.dcm", "1.2.840.10008.1.2.1"),
                                          ("MR_small_implicit.dcm", "1.2.840.10008.1.2"),
                                          ("MR_small_bigendian.dcm", "1.2.840.10008.1.2.2")])
def test_bundled_files_in_every_vr_mode_parse_with_their_uids(name, syntax):
    parsed = parse_file(get_testdata_file(name))
    ds = pydicom.dcmread(get_testdata_file(name), stop_before_pixels=True)
    assert (parsed.sop_instance_uid, parsed.study_uid, parsed.transfer_syntax_uid) == (
        ds.SOPInstanceUID, ds.StudyInstanceUID, syntax)
    assert "7FE00010" not in parsed.header and parsed.header["00080018"]["Value"] == [ds.SOPInstanceUID]


@pytest.mark.parametrize("name, expected", [("chrH31.dcm", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
                                            ("chrX1.dcm", "Wang^XiaoDong=王^小東")])
def test_character_sets_decode_patient_names(name, expected):
    path = str(Path(pydicom.__file__).parent / "data" / "charset_files" / name)
    ds = pydicom.dcmread(path)
    if "SOPInstanceUID" not in ds or "StudyInstanceUID" not in ds or "SeriesInstanceUID" not in ds:
        pytest.skip("the bundled file lacks UIDs")
    assert parse_file(path).patient_name == expected


def test_gb18030_and_utf8_chinese_names_and_private_and_multivalued_elements(tmp_path):
    for charset in ("GB18030", "ISO_IR 192"):
        data = make(Spec(patient_name="张^伟", charset=charset))
        parsed = parse_file(_file(tmp_path, data))
        assert parsed.patient_name == "张^伟"
        assert parsed.header["00100010"]["Value"] == [{"Alphabetic": "张^伟"}]
        assert parsed.header["00080008"]["Value"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
        assert any(tag.startswith("0011") for tag in parsed.header)          # the private block is kept
    assert b"\xd5\xc5" in make(Spec(patient_name="张^伟", charset="GB18030"))  # 张 in GB18030 bytes


def test_pixels_are_not_read(tmp_path, monkeypatch):
    data = make(Spec(rows=512, columns=512))
    parsed = parse_file(_file(tmp_path, data))
    assert (parsed.rows, parsed.columns, parsed.frames) == (512, 512, 1)
    assert all(len(str(v)) < 2000 for v in parsed.header.values())


@pytest.mark.parametrize("mutate, reason", [
    (lambda d: d[:len(d) // 2], "truncated"),
    (lambda d: b"\x00" * 10, "not-dicom"),
    (lambda d: _zipped(d), "not-dicom"),                      # a zip (bomb or not) is not DICOM
    (lambda d: d[:128] + b"XXXX" + d[132:], "not-dicom"),
])
def test_bad_files_are_rejected_with_a_reason(tmp_path, mutate, reason):
    with pytest.raises(Rejected) as caught:
        parse_file(_file(tmp_path, mutate(make(Spec()))))
    assert caught.value.reason == reason


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
def test_missing_uids_are_rejected(tmp_path, keyword):
    ds = pydicom.dcmread(io.BytesIO(make(Spec())))
    delattr(ds, keyword)
    if keyword == "SOPInstanceUID":
        del ds.file_meta.MediaStorageSOPInstanceUID
    out = io.BytesIO()
    ds.save_as(out)
    with pytest.raises(Rejected) as caught:
        parse_file(_file(tmp_path, out.getvalue()))
    assert caught.value.reason == "missing-uid"


def test_deflated_transfer_syntax_is_refused(tmp_path):
    with pytest.raises(Rejected) as caught:
        parse_file(get_testdata_file("image_dfl.dcm"))
    assert caught.value.reason == "unsupported-transfer-syntax"
