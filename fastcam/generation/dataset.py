"""The input side of ``fastcam generate``: a DataLoader whose worker processes
read chunks of the manifest's rows and decode them in uint8
(:class:`ChunkDataset`, :func:`chunk_batches`), and :func:`list_images`, the
sorted image list of a local folder or list (what ``fastcam eval`` reads).

An image that cannot be read or decoded does not stop the run: its row
carries the error text instead of a tensor, and the chunk's record says
``failed``. Decoding and the preprocessing are :mod:`.decode`'s.
"""
from __future__ import annotations

import gc
import hashlib
import os
import time
import warnings
from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple, Optional

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..allocator import release_free_heap
from .decode import decode_uint8
from .manifest import (IMAGE_EXTENSIONS, ImagesSpec, Manifest, list_inputs, read_bytes, read_table_cells,
                       redact, table_row)

__all__ = ["IMAGE_EXTENSIONS", "ImagesSpec", "ImageList", "list_images", "ChunkBatch", "ChunkDataset",
           "chunk_batches"]


@dataclass(frozen=True)
class ImageList:
    """The images of a local folder or list: ``paths`` (sorted, unique), and
    ``root``, the folder relative paths are resolved against (None: the working dir)."""

    paths: list[str]
    root: Optional[str]
    source: str          # what the user passed

    def full_path(self, i: int) -> str:
        p = self.paths[i]
        return p if self.root is None or os.path.isabs(p) else os.path.join(self.root, p)


def list_images(images: ImagesSpec) -> ImageList:
    """The sorted, de-duplicated image list of a folder (recursive), a text file
    of paths or a sequence of paths (:func:`~.manifest.list_inputs`)."""
    ids, _uris, _prints, source, _labels = list_inputs(images)
    root = None
    if isinstance(images, (str, os.PathLike)):
        root = os.fspath(images) if os.path.isdir(images) else os.path.dirname(os.fspath(images))
    return ImageList(ids, root, source)


class ChunkBatch(NamedTuple):
    """One chunk of the store, as the loader delivers it."""

    indices: Tensor      # (n,) int64, consecutive row indices of the chunk
    images: Tensor       # (k, 3, S, S) uint8 (or float in [0, 1]), the decodable images only
    ok: Tensor           # (n,) bool, which indices decoded (their rows are ``images``)
    errors: list         # n strings, "" where ok
    heights: Optional[Tensor] = None     # (n,) int64 the original images' sizes (-1: failed)
    widths: Optional[Tensor] = None
    seconds: Optional[Tensor] = None     # (n,) float64 reading and decoding time per row
    sha256: Optional[list] = None        # n hashes of the bytes read ("" where unread), when asked
    chunk: int = -1


class ChunkDataset(Dataset):
    """Chunk id -> its :class:`ChunkBatch`, decoded in uint8 (:mod:`.decode`)
    from the manifest's URIs (:func:`~.manifest.read_bytes`); a row whose bytes
    cannot be read or decoded is recorded failed with the reason, never raised.
    A table's rows are read one row group at a time."""

    def __init__(self, manifest: Manifest, chunk_size: int, size: int, preprocess: str = "crop", *,
                 image_column: str = "image", storage_options: Optional[dict] = None, hash_bytes: bool = False):
        self.manifest, self.chunk_size, self.size, self.preprocess = manifest, int(chunk_size), int(size), preprocess
        self.image_column, self.storage_options, self.hash_bytes = image_column, storage_options, hash_bytes

    def __len__(self) -> int:
        return -(-len(self.manifest) // self.chunk_size)

    def _bytes(self, rows: range) -> list:
        """Each row's bytes, or the exception reading them raised."""
        out: list = [None] * len(rows)
        tables: dict[str, list[int]] = {}
        for j, i in enumerate(rows):
            where = table_row(self.manifest.uris[i])
            if where is not None:
                tables.setdefault(where[0], []).append(j)
                continue
            try:
                out[j] = read_bytes(self.manifest.uris[i], self.storage_options)
            except Exception as e:  # noqa: BLE001 -- recorded, not raised
                out[j] = e
        for table, js in tables.items():
            try:
                cells = read_table_cells(table, [table_row(self.manifest.uris[rows[j]])[1] for j in js],
                                         self.image_column, self.storage_options)
                for j, v in zip(js, cells):
                    out[j] = v if isinstance(v, (bytes, bytearray)) else \
                        TypeError(f"column {self.image_column!r} holds {type(v).__name__}, not image bytes")
            except Exception as e:  # noqa: BLE001
                for j in js:
                    out[j] = e
        return out

    def __getitem__(self, c: int) -> ChunkBatch:
        rows = range(c * self.chunk_size, min((c + 1) * self.chunk_size, len(self.manifest)))
        n = len(rows)
        t0 = time.perf_counter()
        data = self._bytes(rows)
        read_share = (time.perf_counter() - t0) / max(n, 1)
        images, ok, errors = [], [], []
        heights, widths = torch.full((n,), -1, dtype=torch.int64), torch.full((n,), -1, dtype=torch.int64)
        seconds = torch.zeros(n, dtype=torch.float64)
        digests = [""] * n if self.hash_bytes else None
        for j, (i, d) in enumerate(zip(rows, data)):
            t = time.perf_counter()
            try:
                if isinstance(d, BaseException):
                    raise d
                if digests is not None:
                    digests[j] = "sha256:" + hashlib.sha256(d).hexdigest()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")   # PIL's EXIF/ICC chatter
                    decoded = decode_uint8(d, self.size, self.preprocess)
                images.append(decoded.image)
                heights[j], widths[j] = decoded.height, decoded.width
                ok.append(True)
                errors.append("")
            except Exception as e:  # noqa: BLE001 -- any reading or decoding failure is recorded
                msg = f"{type(e).__name__}: {e}".replace("\n", " ").strip()
                # the message names the image as stored, not where the folder happens to be
                msg = msg.replace(self.manifest.uris[i], self.manifest.ids[i])
                ok.append(False)
                errors.append(redact(msg)[:500])
            seconds[j] = read_share + time.perf_counter() - t
        stacked = torch.stack(images) if images else torch.empty(0, 3, self.size, self.size, dtype=torch.uint8)
        return ChunkBatch(torch.arange(rows.start, rows.stop), stacked, torch.tensor(ok, dtype=torch.bool),
                          errors, heights, widths, seconds, digests, int(c))


def chunk_batches(dataset: ChunkDataset, chunks: Iterable[int], *, workers: int,
                  pin_memory: bool, prefetch: int = 2) -> Iterator[ChunkBatch]:
    """One :class:`ChunkBatch` per chunk of ``chunks`` (any iterable, consumed
    lazily: a generator may skip chunks done meanwhile), in order, from a
    DataLoader whose ``workers`` processes read and decode them (started here:
    they fork this process); with ``pin_memory`` (GPU) the batches are
    page-locked so the host-to-device copy can be asynchronous."""
    kwargs = {}
    if workers > 0:
        kwargs = {"prefetch_factor": prefetch, "persistent_workers": False}
    loader = DataLoader(dataset, sampler=_Lazy(chunks), batch_size=None, num_workers=workers,
                        pin_memory=pin_memory, **kwargs)
    if workers == 0:
        return iter(loader)
    release_free_heap()
    gc.freeze()       # the workers' garbage collector leaves the inherited objects' pages shared
    try:
        return iter(loader)
    finally:
        gc.unfreeze()


class _Lazy:
    """A sampler over an iterable that is read as the loader asks."""

    def __init__(self, items: Iterable[int]):
        self.items = items

    def __iter__(self):
        return iter(self.items)
