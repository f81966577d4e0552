"""The inputs of ``fastcam eval``: the image folder, the labels file and the
boxes file, and the preprocessing of images and boxes.

* Images: every image file below the folder (recursive, sorted; the same rules
  as ``fastcam generate``), named by their path relative to the folder
  (``chelsea.png``). Each is preprocessed as everywhere in fastcam
  (:func:`fastcam.data.load_image`: shorter side to ``round(size·256/224)``,
  centre crop ``size``); an unreadable file is reported, not fatal.
* Labels file: lines ``IMAGE,CLASS`` (comma, tab or spaces), ``CLASS`` an
  ImageNet class index; further columns (a class name for the reader) ignored;
  ``#`` comments, blank lines and one header line allowed.
* Boxes file: lines ``IMAGE,X0,Y0,X1,Y1`` in the *original* image's pixel
  coordinates (x = column, y = row, x1/y1 exclusive, as
  :mod:`fastcam.metrics.localisation` defines them); one line per box, several
  lines for several boxes. They are mapped through the resize and crop.

``IMAGE`` is the relative path, or the file name without extension when that is
unambiguous (``chelsea``).
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from ..data import load_image
from ..generate.dataset import list_images
from ..models.loading import UsageError

Box = tuple[float, float, float, float]


@dataclass
class ImageBatch:
    """The readable images (N,3,S,S) in [0, 1], their names and original sizes
    (H, W), and ``failed``: (name, one-line reason) for the others."""

    x: Tensor
    names: list[str]
    sizes: list[tuple[int, int]]
    failed: list[tuple[str, str]] = field(default_factory=list)


def list_image_names(folder: str) -> tuple[str, list[str]]:
    """(root, sorted relative paths) of the images below ``folder``."""
    if not os.path.isdir(folder):
        raise UsageError(f"--images {folder!r}: no such folder")
    return folder, list(list_images(folder).paths)


def load_images(paths: list[str], names: list[str], size: int = 224) -> ImageBatch:
    """Decode and preprocess; a failure is recorded with its reason."""
    from PIL import Image

    xs, ok, sizes, failed = [], [], [], []
    for path, name in zip(paths, names, strict=True):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(path) as im:
                    w, h = im.size
                x = load_image(path, size)
            if not bool(torch.isfinite(x).all()):
                raise ValueError("decoded image has non-finite values")
        except Exception as e:  # noqa: BLE001 -- any decoding failure is reported, not raised
            msg = f"{type(e).__name__}: {e}".replace("\n", " ").replace(str(path), name).strip()
            failed.append((name, msg[:300]))
            continue
        xs.append(x)
        ok.append(name)
        sizes.append((h, w))
    x = torch.stack(xs) if xs else torch.empty(0, 3, size, size)
    return ImageBatch(x, ok, sizes, failed)


def _rows(path: str, what: str, min_fields: int) -> list[tuple[int, list[str]]]:
    if not os.path.isfile(path):
        raise UsageError(f"--{what} {path!r}: no such file")
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = [p.strip() for p in re.split(r"[,\t]", line)] if re.search(r"[,\t]", line) \
                else line.split()
            if len(fields) < min_fields:
                raise UsageError(f"{path}:{n}: expected at least {min_fields} fields, got {line!r}")
            rows.append((n, fields))
    return rows


def _matcher(names: list[str]):
    stems: dict[str, list[str]] = {}
    for name in names:
        stems.setdefault(Path(name).with_suffix("").as_posix(), []).append(name)
        stems.setdefault(Path(name).stem, []).append(name)
    exact = set(names)

    def match(key: str) -> Optional[str]:
        if key in exact:
            return key
        hits = sorted(set(stems.get(key, [])))
        return hits[0] if len(hits) == 1 else None
    return match


def read_labels(path: str, names: list[str]) -> dict[str, int]:
    """Image name -> class index for the names found in the file (an image the
    file does not name is left out: the caller reports it)."""
    match = _matcher(names)
    out: dict[str, int] = {}
    for i, (n, fields) in enumerate(_rows(path, "labels", 2)):
        if not re.fullmatch(r"-?\d+", fields[1]):
            if i == 0:
                continue          # a header line
            raise UsageError(f"{path}:{n}: class {fields[1]!r} is not a class index")
        c = int(fields[1])
        if c < 0:
            raise UsageError(f"{path}:{n}: negative class index {c}")
        name = match(fields[0])
        if name is not None:
            out[name] = c
    return out


def read_boxes(path: str, names: list[str]) -> dict[str, list[Box]]:
    """Image name -> its boxes (original pixel coordinates)."""
    match = _matcher(names)
    out: dict[str, list[Box]] = {}
    for i, (n, fields) in enumerate(_rows(path, "boxes", 5)):
        try:
            box = tuple(float(v) for v in fields[1:5])
        except ValueError:
            if i == 0:
                continue          # a header line
            raise UsageError(f"{path}:{n}: box coordinates must be numbers, got {fields[1:5]}") from None
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            raise UsageError(f"{path}:{n}: empty box {box} (need x0 < x1 and y0 < y1)")
        name = match(fields[0])
        if name is not None:
            out.setdefault(name, []).append(box)   # type: ignore[arg-type]
    return out


def crop_geometry(height: int, width: int, size: int = 224) -> tuple[float, float, int, int]:
    """(scale_y, scale_x, top, left) of the preprocessing: torchvision's resize of
    the shorter side to ``round(size·256/224)`` and its centre crop."""
    short = int(round(size * 256 / 224))
    if width <= height:
        new_w, new_h = short, int(short * height / width)
    else:
        new_h, new_w = short, int(short * width / height)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    return new_h / height, new_w / width, top, left


def transform_boxes(boxes: list[Box], original: tuple[int, int], size: int = 224) -> list[Box]:
    """Boxes from original pixel coordinates to the preprocessed ``size`` crop,
    clipped to it; boxes that fall outside the crop are dropped."""
    sy, sx, top, left = crop_geometry(original[0], original[1], size)
    out = []
    for x0, y0, x1, y1 in boxes:
        b = (min(max(x0 * sx - left, 0.0), size), min(max(y0 * sy - top, 0.0), size),
             min(max(x1 * sx - left, 0.0), size), min(max(y1 * sy - top, 0.0), size))
        if b[2] > b[0] and b[3] > b[1]:
            out.append(b)
    return out
