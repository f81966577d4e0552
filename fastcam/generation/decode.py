"""Image bytes -> the model's uint8 input: :func:`decode_uint8`.

The loader's workers decode, resize and crop in uint8 and ship uint8 (a
quarter of float32's bytes); the conversion to float in [0, 1] happens on the
device (:func:`to_unit_float`), where the explainer normalises it.

* decoding: PIL; a JPEG is decoded at the smallest DCT scale (1/1, 1/2, 1/4,
  1/8) that still covers the resized size (PIL's ``draft``, libjpeg's scaled
  IDCT), so a large JPEG is never decoded at full resolution;
* colour: grayscale, gray+alpha, RGBA, palette, CMYK and 16-bit files become
  RGB uint8 (16-bit: the high byte, rounded; alpha composited over white in
  integer arithmetic, ``round((c·a + 255·(255 − a)) / 255)``);
* geometry (:data:`PREPROCESS`): ``crop`` resizes the shorter side to
  ``round(size·256/224)`` (the longer one to ``int(short·long/shorter)``, as
  torchvision's resize) and takes the centre ``size × size`` crop, as
  everywhere in fastcam; ``resize`` resizes to ``size × size`` (the aspect
  ratio is not kept, nothing is cut). Both resize bilinearly with antialias in
  uint8 (torchvision's uint8 kernel).

:func:`crop_box` is the part of the original image the map covers, in original
pixels (what the per-chunk table records).
"""
from __future__ import annotations

import io
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..errors import UsageError

#: the geometries of ``--preprocess``
PREPROCESS = ("crop", "resize")
#: what a store records of this module's preprocessing (a resume with another is refused)
DECODER = "pil-draft-uint8-antialias-v1"


def check_preprocess(mode: str) -> str:
    if mode not in PREPROCESS:
        raise UsageError(f"--preprocess {mode!r}: choose from {list(PREPROCESS)}")
    return mode


def preprocessing_record(mode: str, size: int) -> dict:
    """The store's record of how images became the model's input."""
    return {"decoder": DECODER, "geometry": check_preprocess(mode), "size": int(size),
            "resize_shorter_to": int(round(size * 256 / 224)) if mode == "crop" else None,
            "interpolation": "bilinear, antialias, uint8", "scale": "x / 255 on the device"}


class Geometry(NamedTuple):
    """The resized size and the crop's top-left corner (in resized pixels)."""

    height: int
    width: int
    top: int
    left: int


def geometry(height: int, width: int, size: int, mode: str) -> Geometry:
    """Where an ``height × width`` image is resized to and cropped (see the module)."""
    if mode == "resize":
        return Geometry(size, size, 0, 0)
    short = int(round(size * 256 / 224))
    if width <= height:
        new_w, new_h = short, int(short * height / width)
    else:
        new_h, new_w = short, int(short * width / height)
    return Geometry(new_h, new_w, int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0)))


def crop_box(height: int, width: int, size: int, mode: str) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1): the original pixels the ``size × size`` input covers
    (x = column; x1, y1 exclusive). A map pixel (i, j) covers original
    ``x0 + (j + 0.5)·(x1 − x0)/size`` and likewise for y."""
    g = geometry(height, width, size, mode)
    sx, sy = g.width / width, g.height / height
    return (g.left / sx, g.top / sy, (g.left + size) / sx, (g.top + size) / sy)


def _rgb_uint8(im) -> np.ndarray:
    """A PIL image as (H, W, 3) uint8 RGB (see the module for the conversions)."""
    if im.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
        im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
    a = np.asarray(im)
    if a.dtype != np.uint8:
        if a.dtype == np.bool_:
            a = a.astype(np.uint8) * 255
        elif np.issubdtype(a.dtype, np.integer):
            hi = 255 if a.size == 0 or a.max() <= 255 else 65535
            a = a.astype(np.uint8) if hi == 255 else ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        else:
            a = (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"unsupported image array of shape {a.shape}")
    if a.shape[2] in (2, 4):
        alpha = a[:, :, -1:].astype(np.uint16)
        c = a[:, :, :-1].astype(np.uint16)
        a = ((c * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    # writable: Pillow's array view is read-only, which torch.from_numpy warns about
    return np.require(a, requirements=("C_CONTIGUOUS", "WRITEABLE"))


class Decoded(NamedTuple):
    image: Tensor        # (3, size, size) uint8
    height: int          # the original image's
    width: int


def decode_uint8(data: bytes, size: int, mode: str = "crop") -> Decoded:
    """Decode image bytes into the model's ``(3, size, size)`` uint8 input."""
    import torchvision.transforms.v2.functional as TF
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
        g = geometry(height, width, size, mode)
        if im.format == "JPEG":
            im.draft("RGB", (g.width, g.height))
        arr = _rgb_uint8(im)
    t = torch.from_numpy(arr).permute(2, 0, 1)
    if (t.shape[1], t.shape[2]) != (g.height, g.width):
        t = TF.resize(t, [g.height, g.width], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    t = t[:, g.top:g.top + size, g.left:g.left + size]
    if t.shape[1:] != (size, size):
        raise ValueError(f"image of {width}x{height} is too small to crop {size}x{size}")
    return Decoded(t.contiguous(), height, width)


def to_unit_float(x: Tensor) -> Tensor:
    """uint8 images -> float32 in [0, 1] (on their device)."""
    return x.to(torch.float32).div_(255.0)
