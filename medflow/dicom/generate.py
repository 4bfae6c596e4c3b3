"""Synthetic DICOM instances for the demo, the tests and the benchmarks (no downloads).

CT (16-bit signed, rescale slope/intercept, window in the header), CR (MONOCHROME1) and
ultrasound multi-frame (RGB), in explicit or implicit VR, little or big endian, with any
character set (``ISO_IR 192`` UTF-8, ``GB18030`` for Chinese names).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID,
                         generate_uid)

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
VL_PHOTOGRAPHIC = "1.2.840.10008.5.1.4.1.1.77.1.4"


@dataclass
class Spec:
    """What to generate; UIDs are made when not given."""

    modality: str = "CT"
    patient_id: str = "P-0001"
    patient_name: str = "Test^Patient"
    patient_sex: str = "O"
    birth_date: str = "19700101"
    study_uid: str = field(default_factory=generate_uid)
    series_uid: str = field(default_factory=generate_uid)
    sop_uid: str = field(default_factory=generate_uid)
    study_date: date = date(2026, 11, 1)
    accession_number: str = "ACC0001"
    study_description: str = "Synthetic study"
    instance_number: int = 1
    rows: int = 64
    columns: int = 64
    frames: int = 1
    charset: str = "ISO_IR 192"
    implicit_vr: bool = False
    big_endian: bool = False
    private_tag: bool = True
    seed: int = 0
    # Pixels to store instead of the generated disc, values 0..1: [rows, cols] grey (CT, CR,
    # DX), [frames, rows, cols] (US cine), [rows, cols, 3] RGB (XC photograph).
    pixels: "np.ndarray | None" = None


def _bytes(pixels: np.ndarray) -> np.ndarray:
    return (np.clip(pixels, 0, 1) * 255).astype(np.uint8)


def make(spec: Spec) -> bytes:
    """A Part 10 file for ``spec``."""
    ds = Dataset()
    ds.SpecificCharacterSet = spec.charset
    ds.SOPClassUID = {"CT": CT_IMAGE, "CR": CR_IMAGE, "DX": CR_IMAGE, "US": US_MULTIFRAME,
                      "XC": VL_PHOTOGRAPHIC}.get(spec.modality, CT_IMAGE)
    ds.SOPInstanceUID = spec.sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = spec.study_uid, spec.series_uid
    ds.PatientID, ds.PatientName = spec.patient_id, spec.patient_name
    ds.PatientSex, ds.PatientBirthDate = spec.patient_sex, spec.birth_date
    ds.StudyDate = ds.SeriesDate = spec.study_date.strftime("%Y%m%d")
    ds.StudyTime = "083000"
    ds.AccessionNumber, ds.StudyDescription = spec.accession_number, spec.study_description
    ds.Modality = spec.modality
    ds.SeriesNumber, ds.InstanceNumber = 1, spec.instance_number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]           # a multi-valued element
    if spec.pixels is not None:
        spec.rows, spec.columns = spec.pixels.shape[1:3] if spec.modality == "US" else spec.pixels.shape[:2]
        spec.frames = spec.pixels.shape[0] if spec.modality == "US" else 1
    ds.Rows, ds.Columns = spec.rows, spec.columns
    rng = np.random.default_rng(spec.seed)
    yy, xx = np.mgrid[0:spec.rows, 0:spec.columns]
    disc = ((yy - spec.rows / 2) ** 2 + (xx - spec.columns / 2) ** 2) < (min(spec.rows, spec.columns) / 3) ** 2
    if spec.modality == "US":
        ds.NumberOfFrames = spec.frames
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit, ds.PixelRepresentation = 7, 0
        frames = np.stack([(disc * (60 + 30 * f) + rng.integers(0, 40, disc.shape)).astype(np.uint8)
                           for f in range(spec.frames)]) if spec.pixels is None else _bytes(spec.pixels)
        pixels = np.repeat(frames[..., None], 3, axis=-1)
    elif spec.modality == "XC":
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit, ds.PixelRepresentation = 7, 0
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        pixels = _bytes(spec.pixels) if spec.pixels is not None else np.repeat(
            (disc * 180 + rng.integers(0, 40, disc.shape)).astype(np.uint8)[..., None], 3, axis=-1)
    elif spec.pixels is not None:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        pixels = (np.clip(spec.pixels, 0, 1) * 4095).astype(np.uint16)
    else:
        ds.SamplesPerPixel = 1
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12 if spec.modality != "CT" else 16, 11 if spec.modality != "CT" else 15
        if spec.modality == "CT":
            ds.PhotometricInterpretation, ds.PixelRepresentation = "MONOCHROME2", 1
            ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
            ds.WindowCenter, ds.WindowWidth = 40, 400
            pixels = (1024 + disc * 60 + rng.integers(-20, 20, disc.shape)).astype(np.int16)
        else:
            ds.PhotometricInterpretation, ds.PixelRepresentation = "MONOCHROME1", 0
            pixels = (2000 - disc * 1500 + rng.integers(0, 100, disc.shape)).astype(np.uint16)
    if spec.private_tag:
        block = ds.private_block(0x0011, "MEDFLOW SYNTHETIC", create=True)
        block.add_new(0x01, "LO", "synthetic")
    ds.PixelData = (pixels.astype(pixels.dtype.newbyteorder(">")) if spec.big_endian else pixels).tobytes()
    syntax = ImplicitVRLittleEndian if spec.implicit_vr else (ExplicitVRBigEndian if spec.big_endian else ExplicitVRLittleEndian)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    meta.TransferSyntaxUID, meta.ImplementationClassUID = syntax, PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=spec.implicit_vr, little_endian=not spec.big_endian)
    return out.getvalue()
