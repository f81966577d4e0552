"""The input side of ``fastcam generate``: the sorted image list, per-image
targets, and a DataLoader whose worker processes decode and resize images.

An image that cannot be decoded does not stop the run: its sample carries the
error text instead of a tensor, and the chunk's record says ``failed``.
Grayscale, gray+alpha, RGBA, palette and 16-bit files are converted to RGB by
:func:`fastcam.data.load_image` (alpha composited over white), the same
preprocessing as everywhere else in fastcam: shorter side resized to
``round(size*256/224)`` (bilinear, antialiased), centre crop ``size x size``,
float32 in [0, 1].
"""
from __future__ import annotations

import gc
import hashlib
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..data import load_image
from ..errors import UsageError

#: file name endings (case-insensitive) taken from an image folder
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pbm", ".pnm")

ImagesSpec = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


@dataclass(frozen=True)
class ImageList:
    """The images of a run: ``paths`` as stored (sorted, unique), and ``root``,
    the folder relative paths are resolved against (None: the working dir)."""

    paths: list[str]
    root: Optional[str]
    source: str          # what the user passed, for the store's metadata only

    def full_path(self, i: int) -> str:
        p = self.paths[i]
        return p if self.root is None or os.path.isabs(p) else os.path.join(self.root, p)

    def digest(self) -> str:
        return paths_digest(self.paths)


def paths_digest(paths: Sequence[str]) -> str:
    """sha256 of the sorted path list (the store's identity of its inputs)."""
    h = hashlib.sha256()
    h.update(str(len(paths)).encode())
    for p in paths:
        h.update(b"\n")
        h.update(p.encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _scan_folder(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            full = Path(dirpath) / name
            if full.is_file():
                found.append(full.relative_to(root).as_posix())
    return found


def list_images(images: ImagesSpec) -> ImageList:
    """The sorted, de-duplicated image list.

    * a folder: every file below it (recursively; hidden files and folders
      skipped) whose name ends with one of :data:`IMAGE_EXTENSIONS`; paths are
      stored relative to the folder (POSIX separators);
    * a text file: one path per line (blank lines and ``#`` comments skipped);
      paths are stored as written, relative ones resolved against the text
      file's folder;
    * a Python sequence of paths: stored as given, relative to the working dir.
    """
    if isinstance(images, (str, os.PathLike)):
        src = Path(images)
        if src.is_dir():
            paths = _scan_folder(src)
            root, kind = str(src), "folder"
        elif src.is_file():
            with open(src, encoding="utf-8") as f:
                paths = [ln.strip() for ln in f]
            paths = [p for p in paths if p and not p.startswith("#")]
            root, kind = str(src.parent), "list file"
        else:
            raise UsageError(f"--images {str(images)!r}: no such folder or file")
        source = str(images)
    else:
        paths = [os.fspath(p) for p in images]
        root, kind, source = None, "path list", f"<{len(paths)} paths>"
    unique = sorted(set(paths))
    if len(unique) < len(paths):
        warnings.warn(f"{len(paths) - len(unique)} duplicate path(s) in the {kind} were dropped",
                      stacklevel=3)
    if not unique:
        raise UsageError(f"no images found in the {kind} {source!r}")
    return ImageList(unique, root, source)


def read_targets(target: Union[str, int, os.PathLike, None], images: ImageList
                 ) -> tuple[Optional[np.ndarray], object]:
    """Per-image target classes and the metadata describing them.

    ``"predicted"`` / None -> (None, "predicted"); an int -> that class for every
    image; a file -> lines ``PATH CLASS`` (whitespace, comma or tab separated,
    PATH as stored: relative to the images folder), every image needing one.
    """
    if target is None or (isinstance(target, str) and target.lower() == "predicted"):
        return None, "predicted"
    if isinstance(target, (int, np.integer)) or (isinstance(target, str) and target.strip().lstrip("-").isdigit()):
        c = int(target)
        if c < 0:
            raise UsageError(f"--target {c}: a class index must be >= 0")
        return np.full(len(images.paths), c, dtype=np.int64), {"class": c}
    path = Path(target)
    if not path.is_file():
        raise UsageError(f"--target {str(target)!r}: neither 'predicted', a class index nor a file")
    wanted: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.replace(",", " ").replace("\t", " ").rsplit(None, 1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise UsageError(f"{path}:{n}: expected 'PATH CLASS', got {line!r}")
            wanted[parts[0].strip()] = int(parts[1])
    out = np.empty(len(images.paths), dtype=np.int64)
    missing = []
    for i, p in enumerate(images.paths):
        c = wanted.get(p)
        if c is None:
            missing.append(p)
        else:
            out[i] = c
    if missing:
        raise UsageError(f"--target {str(target)!r} has no class for {len(missing)} image(s), "
                            f"e.g. {missing[0]!r}")
    if (out < 0).any():
        raise UsageError(f"--target {str(target)!r}: negative class index")
    digest = hashlib.sha256(out.astype("<i8").tobytes()).hexdigest()
    return out, {"file": path.name, "sha256": digest}


class Sample(NamedTuple):
    index: int
    image: Optional[Tensor]
    error: str


class ChunkBatch(NamedTuple):
    """One chunk of the store, as the loader delivers it."""

    indices: Tensor      # (n,) int64, consecutive image indices of the chunk
    images: Tensor       # (k, 3, S, S) float32, the decodable images only
    ok: Tensor           # (n,) bool, which indices decoded (their rows are ``images``)
    errors: list         # n strings, "" where ok


class ImageDataset(Dataset):
    """Index -> :class:`Sample`; decoding errors are caught and returned."""

    def __init__(self, images: ImageList, size: int):
        self.images, self.size = images, int(size)

    def __len__(self) -> int:
        return len(self.images.paths)

    def __getitem__(self, i: int) -> Sample:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # PIL's EXIF/ICC chatter, once per worker otherwise
                x = load_image(self.images.full_path(i), self.size)
            if not torch.isfinite(x).all():
                raise ValueError("decoded image has non-finite values")
            return Sample(i, x, "")
        except Exception as e:  # noqa: BLE001 -- any decoding failure is recorded, not raised
            msg = f"{type(e).__name__}: {e}".replace("\n", " ").strip()
            # the message names the image as stored, not where the folder happens to be
            msg = msg.replace(self.images.full_path(i), self.images.paths[i])
            return Sample(i, None, msg[:500])


def collate_chunk(samples: Sequence[Sample]) -> ChunkBatch:
    indices = torch.tensor([s.index for s in samples], dtype=torch.int64)
    ok = torch.tensor([s.image is not None for s in samples], dtype=torch.bool)
    good = [s.image for s in samples if s.image is not None]
    images = torch.stack(good) if good else torch.empty(0, 3, 0, 0)
    return ChunkBatch(indices, images, ok, [s.error for s in samples])


def chunk_batches(dataset: ImageDataset, chunks: Sequence[Sequence[int]], *, workers: int,
                  pin_memory: bool, prefetch: int = 2) -> Iterator[ChunkBatch]:
    """One :class:`ChunkBatch` per chunk, in order, from a DataLoader whose
    ``workers`` processes decode and resize (started here: they fork this
    process); with ``pin_memory`` (GPU) the batches are page-locked so the
    host-to-device copy can be asynchronous."""
    if not chunks:
        return iter(())
    kwargs = {}
    if workers > 0:
        kwargs = {"prefetch_factor": prefetch, "persistent_workers": False}
    loader = DataLoader(dataset, batch_sampler=[list(c) for c in chunks], collate_fn=collate_chunk,
                        num_workers=workers, pin_memory=pin_memory, **kwargs)
    if workers == 0:
        return iter(loader)
    _release_free_heap()
    gc.freeze()       # the workers' garbage collector leaves the inherited objects' pages shared
    try:
        return iter(loader)
    finally:
        gc.unfreeze()


def _release_free_heap() -> None:
    """Return the C heap's free pages to the OS before the loader forks its
    workers. Pages shared with a forked child are copied on the parent's next
    write to them (copy-on-write); in a process that had already computed large
    batches (a notebook, a benchmark) the allocator reuses gigabytes of such
    pages, which made the first batch after the fork about 5x slower."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):   # not glibc
        pass
