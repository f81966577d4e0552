"""The inputs of ``fastcam eval``: the image folder, the labels file and the
boxes file, and the preprocessing of images and boxes.

* Images: every image file below the folder (recursive, sorted; the same rules
  as ``fastcam generate``), named by their path relative to the folder
  (``chelsea.png``), or the paths a text file lists. Each is decoded as
  ``fastcam generate`` decodes (:func:`fastcam.generation.decode.decode_uint8`),
  ``preprocess="crop"`` (default, as everywhere in fastcam: shorter side to
  ``round(size·256/224)``, centre crop ``size``) or ``"resize"`` (to
  ``size × size``, for datasets already resized); an unreadable file is
  reported, not fatal.
* Labels file: lines ``IMAGE,CLASS`` (comma, tab or spaces), ``CLASS`` an
  ImageNet class index; further columns (a class name for the reader) ignored;
  ``#`` comments, blank lines, a UTF-8 BOM and one header line (a first line
  whose class field does not look like a number) allowed; the whole file is
  checked before any work, an error names its line; an image given two
  different classes is an error, a repeated identical line is accepted.
* Boxes file: lines ``IMAGE,X0,Y0,X1,Y1`` in the *original* image's pixel
  coordinates (x = column, y = row, x1/y1 exclusive, as
  :mod:`fastcam.metrics.localisation` defines them); one line per box, several
  lines for several boxes (the same header, BOM and line-numbered errors). They are
  mapped through the same preprocessing, exactly: a box edge at original
  coordinate ``u`` goes to ``u·scale − offset`` (pixel edges, not centres), clipped
  to the output.

``IMAGE`` is the relative path, or the file name without extension when that is
unambiguous (``chelsea``).
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import torch
from torch import Tensor

from ..data import crop_window
from ..errors import UsageError
from ..generation.dataset import list_images

Box = tuple[float, float, float, float]
Preprocess = Literal["crop", "resize"]
#: the choices of ``--preprocess``
PREPROCESS_CHOICES: tuple[str, ...] = ("crop", "resize")


@dataclass
class ImageBatch:
    """The readable images (N,3,S,S) in [0, 1], their names and original sizes
    (H, W), and ``failed``: (name, one-line reason) for the others."""

    x: Tensor
    names: list[str]
    sizes: list[tuple[int, int]]
    failed: list[tuple[str, str]] = field(default_factory=list)


def list_image_names(images: str) -> tuple[str, list[str]]:
    """(root, names): for a folder, its images' sorted relative paths; for a text
    file, the paths it lists (one per line, blank lines and ``#`` comments
    skipped), relative to the file's folder unless absolute, in its order."""
    if os.path.isdir(images):
        return images, list(list_images(images).paths)
    if not os.path.isfile(images):
        raise UsageError(f"--images {images!r}: no such folder or file")
    try:
        with open(images, encoding="utf-8-sig") as f:
            lines = [ln.strip() for ln in f.read().splitlines()]
    except UnicodeDecodeError:
        raise UsageError(f"--images {images!r}: a folder, or a UTF-8 text file of image paths") from None
    names = [ln for ln in lines if ln and not ln.startswith("#")]
    if not names:
        raise UsageError(f"--images {images!r} lists no image")
    if len(set(names)) < len(names):
        raise UsageError(f"--images {images!r} lists an image twice")
    return os.path.dirname(os.path.abspath(images)), names


def load_images(paths: list[str], names: list[str], size: int = 224, preprocess: Preprocess = "crop") -> ImageBatch:
    """Decode and preprocess (``"crop"`` or ``"resize"``, see the module doc) with
    ``fastcam generate``'s decoder (:func:`fastcam.generation.decode.decode_uint8`:
    uint8 decoding and antialiased resize, then ``/ 255``), so that ``eval`` scores
    maps of exactly the inputs ``generate`` computed them on; a failure is
    recorded with its reason."""
    if preprocess not in PREPROCESS_CHOICES:
        raise UsageError(f"preprocess must be one of {PREPROCESS_CHOICES}, got {preprocess!r}")
    from ..generation.decode import decode_uint8, to_unit_float

    xs, ok, sizes, failed = [], [], [], []
    for path, name in zip(paths, names, strict=True):
        try:
            with open(path, "rb") as f:
                data = f.read()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                decoded = decode_uint8(data, size, preprocess)
            x = to_unit_float(decoded.image)
        except Exception as e:  # noqa: BLE001 -- any decoding failure is reported, not raised
            msg = f"{type(e).__name__}: {e}".replace("\n", " ").replace(str(path), name).strip()
            failed.append((name, msg[:300]))
            continue
        xs.append(x)
        ok.append(name)
        sizes.append((decoded.height, decoded.width))
    x = torch.stack(xs) if xs else torch.empty(0, 3, size, size)
    return ImageBatch(x, ok, sizes, failed)


def _rows(path: str, what: str, min_fields: int) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every data line of a UTF-8 text file (a BOM
    allowed); ``#`` comments and blank lines skipped."""
    if os.path.isdir(path):
        raise UsageError(f"--{what} {path!r} is a folder, not a file")
    if not os.path.isfile(path):
        raise UsageError(f"--{what} {path!r}: no such file")
    rows = []
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise UsageError(f"--{what} {path!r} is not a UTF-8 text file (byte {e.start}: {e.reason})") from None
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = [p.strip() for p in re.split(r"[,\t]", line)] if re.search(r"[,\t]", line) \
            else line.split()
        if len(fields) < min_fields:
            raise UsageError(f"{_where(path, n)}: expected at least {min_fields} fields, got {line!r}")
        rows.append((n, fields))
    return rows


def _where(path: str, n: int) -> str:
    return f"{os.path.basename(path)} line {n}"


def _numeric_looking(text: str) -> bool:
    """Whether ``text`` reads as a number (``3``, ``-1``, ``2.5``, ``1e3``): such a
    field makes its line a data row, never a header."""
    return re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text) is not None


def _is_header(i: int, values: list[str]) -> bool:
    """The first data line is a header when none of its ``values`` looks numeric."""
    return i == 0 and not any(_numeric_looking(v) for v in values)


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


@dataclass(frozen=True)
class LabelRow:
    """One line of a labels file: its line number, image key and class index."""

    line: int
    key: str
    label: int


def read_label_rows(path: str) -> list[LabelRow]:
    """Every row of a labels file, checked: each class a non-negative integer,
    one header line at most (its class field not numeric-looking), and no image
    key given two different classes (identical repeats are accepted)."""
    out: list[LabelRow] = []
    seen: dict[str, LabelRow] = {}
    for i, (n, fields) in enumerate(_rows(path, "labels", 2)):
        if _is_header(i, fields[1:2]):
            continue
        if not re.fullmatch(r"\d+", fields[1]):
            kind = "negative class index" if re.fullmatch(r"-\d+", fields[1]) else "not a class index"
            raise UsageError(f"{_where(path, n)}: class {fields[1]!r}: {kind}")
        row = LabelRow(n, fields[0], int(fields[1]))
        _check_repeat(path, seen, row.key, row)
        out.append(row)
    return out


def _check_repeat(path: str, seen: dict, key: str, row: LabelRow) -> None:
    first = seen.setdefault(key, row)
    if first.label != row.label:
        raise UsageError(f"{_where(path, row.line)}: {row.key!r} has class {row.label}, but line "
                         f"{first.line} gives it class {first.label}")


def check_label_range(path: str, rows: list[LabelRow], n_classes: int) -> None:
    """:class:`UsageError` naming the first row whose class the model does not have."""
    for row in rows:
        if row.label >= n_classes:
            raise UsageError(f"{_where(path, row.line)}: class {row.label} out of range for a model "
                             f"with {n_classes} classes")


def match_labels(path: str, rows: list[LabelRow], names: list[str]) -> dict[str, int]:
    """Image name -> class for the rows that name one of ``names``; two keys
    naming one image with different classes (``cat`` and ``cat.png``) are an error."""
    match = _matcher(names)
    out: dict[str, int] = {}
    seen: dict[str, LabelRow] = {}
    for row in rows:
        name = match(row.key)
        if name is not None:
            _check_repeat(path, seen, name, row)
            out[name] = row.label
    return out


def read_labels(path: str, names: list[str]) -> dict[str, int]:
    """Image name -> class index for the names found in the file (an image the
    file does not name is left out: the caller reports it)."""
    return match_labels(path, read_label_rows(path), names)


def read_box_rows(path: str) -> list[tuple[str, Box]]:
    """(image key, box) of every row of a boxes file, checked: numeric
    coordinates, non-empty boxes, one header line at most (no numeric-looking
    coordinate)."""
    out: list[tuple[str, Box]] = []
    for i, (n, fields) in enumerate(_rows(path, "boxes", 5)):
        if _is_header(i, fields[:5]):
            continue
        try:
            box = tuple(float(v) for v in fields[1:5])
        except ValueError:
            raise UsageError(f"{_where(path, n)}: box coordinates must be numbers, got {fields[1:5]}") from None
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            raise UsageError(f"{_where(path, n)}: empty box {box} (need x0 < x1 and y0 < y1)")
        out.append((fields[0], box))   # type: ignore[arg-type]
    return out


def match_boxes(rows: list[tuple[str, Box]], names: list[str]) -> dict[str, list[Box]]:
    """Image name -> its boxes, for the rows that name one of ``names``."""
    match = _matcher(names)
    out: dict[str, list[Box]] = {}
    for key, box in rows:
        name = match(key)
        if name is not None:
            out.setdefault(name, []).append(box)
    return out


def read_boxes(path: str, names: list[str]) -> dict[str, list[Box]]:
    """Image name -> its boxes (original pixel coordinates)."""
    return match_boxes(read_box_rows(path), names)


def crop_geometry(height: int, width: int, size: int = 224,
                  preprocess: Preprocess = "crop") -> tuple[float, float, int, int]:
    """(scale_y, scale_x, top, left) of the preprocessing: ``"crop"``,
    :func:`fastcam.data.crop_window` (the shorter side resized to ``round(size·256/224)``,
    then the centre crop); ``"resize"``, the plain resize to ``size × size`` (no offset)."""
    if preprocess == "resize":
        return size / height, size / width, 0, 0
    if preprocess != "crop":
        raise UsageError(f"preprocess must be one of {PREPROCESS_CHOICES}, got {preprocess!r}")
    new_h, new_w, top, left = crop_window(height, width, size)
    return new_h / height, new_w / width, top, left


def transform_boxes(boxes: list[Box], original: tuple[int, int], size: int = 224,
                    preprocess: Preprocess = "crop") -> list[Box]:
    """Boxes from original pixel coordinates to the preprocessed ``size × size``
    image, clipped to it; boxes that fall outside the crop are dropped."""
    sy, sx, top, left = crop_geometry(original[0], original[1], size, preprocess)
    out = []
    for x0, y0, x1, y1 in boxes:
        b = (min(max(x0 * sx - left, 0.0), size), min(max(y0 * sy - top, 0.0), size),
             min(max(x1 * sx - left, 0.0), size), min(max(y1 * sy - top, 0.0), size))
        if b[2] > b[0] and b[3] > b[1]:
            out.append(b)
    return out
