"""Rendering one frame of an instance to PNG or JPEG for the web client.

Modality LUT (rescale slope/intercept), then the window (centre/width from the request, else
the header's first value, else the frame's own range), MONOCHROME1 inverted, colour images
as they are; ``size`` bounds the longer side (thumbnails). Only uncompressed transfer
syntaxes are decoded (no codec plugins installed): others raise ``Unrenderable``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.uid import UID

MAX_FRAMES_HINT = 10_000


class Unrenderable(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class RenderRequest:
    frame: int = 1                     # 1-based, as DICOM numbers frames
    window_center: float | None = None
    window_width: float | None = None
    size: int | None = None            # longest side in pixels (thumbnail)
    format: str = "png"                # png | jpeg


def _first(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value[0] if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else value)
    except (TypeError, ValueError, IndexError):
        return None


def render(path: str | Path, req: RenderRequest) -> bytes:
    ds = pydicom.dcmread(str(path))
    syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2")))
    if syntax.is_compressed:
        raise Unrenderable("unsupported-transfer-syntax", "Compressed pixel data cannot be rendered here.")
    if "PixelData" not in ds:
        raise Unrenderable("no-pixels", "The instance has no pixel data.")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if not 1 <= req.frame <= frames:
        raise Unrenderable("no-such-frame", f"The instance has {frames} frame(s).")
    try:
        array = pydicom.pixels.pixel_array(ds, index=req.frame - 1) if frames > 1 else ds.pixel_array
    except Exception as exc:
        raise Unrenderable("undecodable-pixels", f"The pixel data cannot be decoded ({type(exc).__name__}).") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if int(ds.get("SamplesPerPixel", 1) or 1) == 3:
        if photometric.startswith("YBR"):
            array = pydicom.pixels.convert_color_space(array, photometric, "RGB")
        image = Image.fromarray(np.ascontiguousarray(array).astype(np.uint8), "RGB")
    else:
        image = Image.fromarray(_windowed(ds, array.astype(np.float64), req, photometric), "L")
    if req.size:
        image.thumbnail((req.size, req.size))
    out = io.BytesIO()
    if req.format == "jpeg":
        image.convert("RGB" if image.mode == "RGB" else "L").save(out, "JPEG", quality=90)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def _windowed(ds, values: np.ndarray, req: RenderRequest, photometric: str) -> np.ndarray:
    slope = _first(ds.get("RescaleSlope")) or 1.0
    intercept = _first(ds.get("RescaleIntercept")) or 0.0
    values = values * slope + intercept
    center = req.window_center if req.window_center is not None else _first(ds.get("WindowCenter"))
    width = req.window_width if req.window_width is not None else _first(ds.get("WindowWidth"))
    if center is None or width is None or width <= 0:
        low, high = float(values.min()), float(values.max())
        center, width = (low + high) / 2, max(high - low, 1.0)
    low = center - width / 2
    scaled = np.clip((values - low) / width, 0.0, 1.0) * 255.0
    if photometric == "MONOCHROME1":
        scaled = 255.0 - scaled
    return scaled.round().astype(np.uint8)
