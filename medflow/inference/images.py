"""Decoding images for the predictors: DICOM (single frame or a multi-frame cine clip) and
JPEG/PNG. Undecodable, tiny or too-short inputs raise ImageError with a message fit for a
v2 error (never pixel data or patient fields)."""

from __future__ import annotations

import io

import numpy as np

MIN_SIDE = 64  # smaller than this is no diagnostic image


class ImageError(ValueError):
    pass


def _is_dicom(data: bytes) -> bool:
    return len(data) > 132 and data[128:132] == b"DICM"


def _dicom_pixels(data: bytes, keep_rgb: bool = False) -> np.ndarray:
    import pydicom
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        pixels = ds.pixel_array.astype(np.float32)
    except Exception:  # noqa: BLE001 - pydicom raises many kinds for broken files
        raise ImageError("not a decodable DICOM image") from None
    slope, intercept = float(getattr(ds, "RescaleSlope", 1) or 1), float(getattr(ds, "RescaleIntercept", 0) or 0)
    pixels = pixels * slope + intercept
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":  # white is low: invert
        pixels = pixels.max() - pixels
    if pixels.ndim == 4:  # frames, rows, cols, RGB -> grey
        pixels = pixels.mean(-1)
    elif pixels.ndim == 3 and int(getattr(ds, "SamplesPerPixel", 1)) == 3 and not keep_rgb:
        pixels = pixels.mean(-1)
    return pixels


def _to_unit(pixels: np.ndarray) -> np.ndarray:
    lo, hi = float(pixels.min()), float(pixels.max())
    return np.zeros_like(pixels, np.float32) if hi <= lo else ((pixels - lo) / (hi - lo)).astype(np.float32)


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.fromarray(frame.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR))


def decode_image(data: bytes, size: int, channels: int = 1) -> np.ndarray:
    """One image as float32 [channels, size, size] in 0..1 (DICOM, PNG or JPEG)."""
    if _is_dicom(data):
        pixels = _dicom_pixels(data, keep_rgb=channels == 3)
        if pixels.ndim == 3 and pixels.shape[-1] == 3 and channels == 3:   # an RGB photograph (VL, XC)
            planes = [pixels[..., c] / 255.0 for c in range(3)]
        elif pixels.ndim != 2:
            raise ImageError("a single-frame image was expected, not a multi-frame clip")
        else:
            planes = [_to_unit(pixels)] * channels
    else:
        from PIL import Image, UnidentifiedImageError
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except (UnidentifiedImageError, OSError, ValueError):
            raise ImageError("not a decodable image (DICOM, PNG or JPEG expected)") from None
        image = image.convert("RGB" if channels == 3 else "L")
        array = np.asarray(image, np.float32) / 255.0
        planes = [array[..., c] for c in range(3)] if channels == 3 else [array]
    h, w = planes[0].shape
    if min(h, w) < MIN_SIDE:
        raise ImageError(f"image too small: {w}x{h} pixels, at least {MIN_SIDE} on each side")
    return np.stack([_resize(p, size) for p in planes]).astype(np.float32)


def decode_clip(data: bytes, frames: int, size: int) -> np.ndarray:
    """A cine clip (multi-frame DICOM) as float32 [1, frames, size, size]: ``frames`` frames
    sampled evenly; fewer frames than that is an error."""
    if not _is_dicom(data):
        raise ImageError("a multi-frame DICOM cine clip was expected")
    pixels = _dicom_pixels(data)
    if pixels.ndim != 3:
        raise ImageError(f"a cine clip of at least {frames} frames was expected, not a single image")
    if pixels.shape[0] < frames:
        raise ImageError(f"clip too short: {pixels.shape[0]} frames, at least {frames} needed")
    if min(pixels.shape[1:]) < MIN_SIDE:
        raise ImageError(f"clip frames too small: at least {MIN_SIDE} pixels on each side")
    pick = np.linspace(0, pixels.shape[0] - 1, frames).round().astype(int)
    clip = _to_unit(pixels[pick])
    return np.stack([_resize(f, size) for f in clip])[None].astype(np.float32)


def png_bytes(array: np.ndarray) -> bytes:
    """A 0..1 grey [H, W] or RGB [H, W, 3] array as PNG bytes (demo inputs, tests)."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray((np.clip(array, 0, 1) * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def dicom_bytes(pixels: np.ndarray, modality: str = "CR") -> bytes:
    """A minimal DICOM (uint16 grey; [frames, H, W] makes a multi-frame cine) for demo inputs and tests."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"  # secondary capture
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientName, ds.PatientID = modality, "DEMO^GENERATED", "DEMO"
    data = (np.clip(pixels, 0, 1) * 4095).astype(np.uint16)
    if data.ndim == 3:
        ds.NumberOfFrames = data.shape[0]
    ds.Rows, ds.Columns = data.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = data.tobytes()
    buf = io.BytesIO()
    pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()
