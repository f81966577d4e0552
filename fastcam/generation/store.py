"""The Zarr store of ``fastcam generate``: layout, creation, resume, checks.

Layout (Zarr format 3, one group; N images, C = chunk size = batch size)::

    STORE.zarr/
      zarr.json            attrs["fastcam"]: method, options, model, weights,
                           layer, size, dtype, target, normalize, precision
                           (the model's: fp32, bf16 or fp16), n_images,
                           chunk_size, paths_sha256, fastcam_version, state,
                           and once every chunk is written: complete, n_done, n_failed
      maps/                (N, S, S) float16|float32, chunks (C, S, S); NaN = no map
      path/                (N,) str     the image path as listed (sorted)
      predicted/           (N,) int32   argmax class of the model (-1: failed)
      probability/         (N,) float32 its softmax probability (NaN: failed)
      target/              (N,) int32   the class explained (-1: failed)
      error/               (N,) str     "" or the decoding error
      fingerprint/         (N,) str     the image file's fingerprint when computed
                                        (attrs "fingerprint": its kind; absent in
                                        stores made before fastcam recorded it)
      status/              (N,) uint8   0 pending, 1 done, 2 failed -- written LAST

Every per-image array is chunked by C along the image axis, so chunk ``c``
holds images ``[c*C, (c+1)*C)`` in every array, and a chunk is written by
exactly one process, all at once, data first and ``status`` last. Chunk
``c`` is done iff its ``status`` chunk exists (status is never 0 once
written): a process killed at any moment leaves each chunk either complete or
without a status record, and a re-run recomputes exactly the latter
(overwriting any data it had written), as well as the done chunks whose
``maps`` chunk is missing or that hold an image whose fingerprint changed
(:mod:`.plan`). Local stores write every object to a
temporary file and rename it (Zarr's ``LocalStore``), object stores put whole
objects; a torn record found anyway (a non-atomic fsspec file system) fails
to decode and counts as not done.
"""
from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import UsageError

STATUS_PENDING, STATUS_DONE, STATUS_FAILED = 0, 1, 2
FORMAT = 1
#: metadata keys that must match for a run to resume a store
CHECKED_KEYS = ("format", "method", "options", "model", "weights", "layer", "size", "dtype",
                "target", "normalize", "precision", "n_images", "paths_sha256")
#: the value of a checked key that stores made before fastcam recorded it imply
#: (every run before ``precision`` existed ran the model in fp32)
IMPLIED = {"precision": "fp32"}
#: method options that stores made before fastcam had them imply (``compile`` changes
#: how the model runs, not what is computed; every earlier run ran eagerly)
IMPLIED_OPTIONS = {"compile": False}
PER_IMAGE = {            # name: (dtype, fill value)
    "path": (str, ""),
    "predicted": ("int32", -1),
    "probability": ("float32", float("nan")),
    "target": ("int32", -1),
    "error": (str, ""),
    "status": ("uint8", STATUS_PENDING),
}
_PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")


def _zarr():
    try:
        import zarr
    except ImportError as e:  # pragma: no cover - the [generate] extra
        raise UsageError("fastcam generate needs zarr >= 3.1: pip install 'fastcam[generate]'") from e
    if int(zarr.__version__.split(".")[0]) < 3:
        raise UsageError(f"fastcam generate needs zarr >= 3.1, found {zarr.__version__}")
    return zarr


def is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def _local_path(location: str) -> Optional[str]:
    if location.startswith("file://"):
        return location[len("file://"):]
    return None if is_url(location) else location


def _location_has_content(location: str, storage_options: Optional[dict]) -> bool:
    local = _local_path(location)
    if local is not None:
        return os.path.exists(local) and (not os.path.isdir(local) or bool(os.listdir(local)))
    import fsspec

    fs, path = fsspec.core.url_to_fs(location, **(storage_options or {}))
    try:
        return bool(fs.exists(path) and (fs.isfile(path) or fs.ls(path)))
    except FileNotFoundError:
        return False


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def describe_mismatch(stored: dict, wanted: dict) -> list[str]:
    """Human-readable differences between a store's metadata and this run's."""
    out = []
    for key in CHECKED_KEYS:
        a, b = stored.get(key, IMPLIED.get(key)), _jsonable(wanted.get(key))
        if key == "options" and isinstance(a, dict) and isinstance(b, dict):
            a = {**{k: v for k, v in IMPLIED_OPTIONS.items() if k in b}, **a}
        if a != b:
            if key == "paths_sha256":
                out.append("the image list differs (other files or paths)")
            else:
                out.append(f"{key}: store has {json.dumps(a)}, this run {json.dumps(b)}")
    return out


@dataclass
class StoreCounts:
    n_images: int
    done: int
    failed: int

    @property
    def pending(self) -> int:
        return self.n_images - self.done - self.failed


class SaliencyStore:
    """An opened store. Create or validate with :meth:`open_or_create` (one
    process), attach further writers with :meth:`attach`."""

    def __init__(self, group, location: str):
        self.group, self.location = group, location
        self.meta: dict = dict(group.attrs["fastcam"])
        self.n_images: int = int(self.meta["n_images"])
        self.chunk_size: int = int(self.meta["chunk_size"])
        #: the fingerprint kind of :mod:`.fingerprint`, None for a store made without
        self.fingerprint_kind: Optional[str] = self.meta.get("fingerprint")
        self.arrays = {name: group[name] for name in array_names(self.meta)}

    # -- opening -----------------------------------------------------------
    @classmethod
    def open_or_create(cls, location: str, meta: dict, paths: Sequence[str], *,
                       chunk_size: int, storage_options: Optional[dict] = None) -> "SaliencyStore":
        """Open ``location`` for this run: create it, or check that its metadata
        matches ``meta`` (else :class:`UsageError`). A store whose creation
        was interrupted is created again; anything else that is not a fastcam
        store is never overwritten."""
        zarr = _zarr()
        location = os.fspath(location)
        if _location_has_content(location, storage_options):
            try:
                group = zarr.open_group(location, mode="r+", storage_options=storage_options)
                stored = group.attrs.get("fastcam")
            except Exception as e:  # noqa: BLE001
                raise UsageError(f"{location} exists and is not a fastcam store "
                                    f"({type(e).__name__}); choose another --out") from None
            if not isinstance(stored, dict):
                raise UsageError(f"{location} is a Zarr group without fastcam metadata; "
                                    "choose another --out")
            if stored.get("state") == "ready":
                diff = describe_mismatch(stored, meta)
                if diff:
                    raise UsageError(f"{location} was made by a different run ("
                                        + "; ".join(diff) + "); use another --out or the same arguments")
                if stored.get("fingerprint") is None:
                    warnings.warn(f"{location} was made before fastcam recorded image fingerprints: "
                                  "images changed since are not detected", stacklevel=3)
                elif stored["fingerprint"] != meta.get("fingerprint"):
                    raise UsageError(f"{location} records {stored['fingerprint']} fingerprints, this run "
                                     f"asked for {meta.get('fingerprint')}; use --fingerprint "
                                     f"{stored['fingerprint']}")
                if stored.get("fastcam_version") != meta.get("fastcam_version"):
                    warnings.warn(f"{location} was made by fastcam {stored.get('fastcam_version')}, "
                                  f"this is {meta.get('fastcam_version')}", stacklevel=3)
                _remove_partial_files(location)
                return cls(group, location)
            # state "creating": a previous run died while creating it; nothing was computed
        return cls._create(location, meta, paths, chunk_size, storage_options)

    @classmethod
    def _create(cls, location, meta, paths, chunk_size, storage_options) -> "SaliencyStore":
        zarr = _zarr()
        n, size = int(meta["n_images"]), int(meta["size"])
        if len(paths) != n:
            raise ValueError("paths and metadata disagree on the number of images")
        attrs = {"fastcam": {**_jsonable(meta), "chunk_size": int(chunk_size), "state": "creating"}}
        group = zarr.open_group(location, mode="w", storage_options=storage_options,
                                zarr_format=3, attributes=attrs)
        group.create_array("maps", shape=(n, size, size), chunks=(chunk_size, size, size),
                           dtype=meta["dtype"], fill_value=float("nan"),
                           dimension_names=("image", "y", "x"),
                           attributes={"description": "saliency maps in [0, 1]; NaN where no map "
                                                      "(failed or pending image)"})
        for name, (dtype, fill) in PER_IMAGE.items():
            extra = {}
            if name == "status":
                extra = {"attributes": {"codes": {"0": "pending", "1": "done", "2": "failed"}}}
            group.create_array(name, shape=(n,), chunks=(chunk_size,), dtype=dtype,
                               fill_value=fill, dimension_names=("image",), **extra)
        if meta.get("fingerprint"):
            group.create_array("fingerprint", shape=(n,), chunks=(chunk_size,), dtype=str, fill_value="",
                               dimension_names=("image",),
                               attributes={"kind": meta["fingerprint"]})
        attrs["fastcam"]["state"] = "ready"       # the store is usable from here on
        group.attrs.update(attrs)
        return cls(group, location)

    @classmethod
    def attach(cls, location: str, storage_options: Optional[dict] = None) -> "SaliencyStore":
        """Open a store another process created (distributed ranks)."""
        group = _zarr().open_group(os.fspath(location), mode="r+", storage_options=storage_options)
        return cls(group, os.fspath(location))

    # -- chunks ---------------------------------------------------------------
    @property
    def n_chunks(self) -> int:
        return -(-self.n_images // self.chunk_size)

    def chunk_range(self, c: int) -> range:
        return range(c * self.chunk_size, min((c + 1) * self.chunk_size, self.n_images))

    def status(self) -> np.ndarray:
        """(N,) status codes; a chunk whose record cannot be read counts as pending."""
        arr = self.arrays["status"]
        try:
            return np.asarray(arr[:], dtype=np.uint8)
        except Exception:  # noqa: BLE001 - a torn record: read chunk by chunk
            out = np.zeros(self.n_images, dtype=np.uint8)
            for c in range(self.n_chunks):
                r = self.chunk_range(c)
                try:
                    out[r.start:r.stop] = arr[r.start:r.stop]
                except Exception:  # noqa: BLE001
                    pass
            return out

    def pending_chunks(self, status: Optional[np.ndarray] = None, retry_failed: bool = False) -> list[int]:
        """Chunks still to compute, in order (with ``retry_failed`` also the
        chunks holding a failed image)."""
        status = self.status() if status is None else status
        out = []
        for c in range(self.n_chunks):
            r = self.chunk_range(c)
            s = status[r.start:r.stop]
            if (s == STATUS_PENDING).any() or (retry_failed and (s == STATUS_FAILED).any()):
                out.append(c)
        return out

    def counts(self, status: Optional[np.ndarray] = None) -> StoreCounts:
        status = self.status() if status is None else status
        return StoreCounts(self.n_images, int((status == STATUS_DONE).sum()),
                           int((status == STATUS_FAILED).sum()))

    def missing_map_chunks(self, status: Optional[np.ndarray] = None) -> list[int]:
        """Chunks holding a done image whose ``maps`` chunk is not in the store
        (deleted by hand: it would read back as the fill value)."""
        from zarr.core.sync import sync

        status = self.status() if status is None else status
        maps = self.arrays["maps"]

        async def stored_keys() -> set:     # one listing, not one request per chunk
            return {k async for k in self.group.store.list_prefix(f"{maps.path}/")}

        keys = sync(stored_keys())
        out = []
        for c in range(self.n_chunks):
            r = self.chunk_range(c)
            if (status[r.start:r.stop] == STATUS_DONE).any() and \
                    f"{maps.path}/{maps.metadata.encode_chunk_key((c, 0, 0))}" not in keys:
                out.append(c)
        return out

    def changed_images(self, current: dict[int, str], status: Optional[np.ndarray] = None) -> list[int]:
        """The computed (done or failed) images among ``current`` (index ->
        fingerprint now) whose recorded fingerprint differs; [] for a store
        without fingerprints."""
        if self.fingerprint_kind is None or not current:
            return []
        status = self.status() if status is None else status
        recorded = np.asarray(self.arrays["fingerprint"][:], dtype=object)
        return sorted(i for i, fp in current.items()
                      if status[i] != STATUS_PENDING and recorded[i] != fp)

    def write_chunk(self, c: int, *, maps: np.ndarray, paths: Sequence[str], predicted: np.ndarray,
                    probability: np.ndarray, target: np.ndarray, error: Sequence[str],
                    status: np.ndarray, fingerprint: Optional[Sequence[str]] = None) -> None:
        """Write chunk ``c`` of every array: the data first, then the images'
        fingerprints (when the store records them), ``status`` last."""
        r = self.chunk_range(c)
        s = slice(r.start, r.stop)
        if len(maps) != len(r) or len(status) != len(r):
            raise ValueError(f"chunk {c} holds {len(r)} images, got {len(maps)}")
        if (np.asarray(status) == STATUS_PENDING).any():
            raise ValueError("a written chunk cannot hold pending images")
        a = self.arrays
        a["maps"][s] = maps
        a["path"][s] = np.asarray(list(paths), dtype=object)
        a["predicted"][s] = predicted
        a["probability"][s] = probability
        a["target"][s] = target
        a["error"][s] = np.asarray(list(error), dtype=object)
        if "fingerprint" in a:
            if fingerprint is None or len(fingerprint) != len(r):
                raise ValueError(f"chunk {c}: the store records fingerprints, give one per image")
            a["fingerprint"][s] = np.asarray(list(fingerprint), dtype=object)
        a["status"][s] = status            # the chunk's "done" record

    def finalize(self) -> StoreCounts:
        """Record completion in the metadata once every chunk is written (the
        same values however many runs and processes it took)."""
        status = self.status()
        counts = self.counts(status)
        if counts.pending == 0 and not self.meta.get("complete"):
            meta = {**self.meta, "complete": True, "n_done": counts.done, "n_failed": counts.failed}
            self.group.attrs.update({"fastcam": meta})
            self.meta = meta
        return counts


def array_names(meta: dict) -> tuple[str, ...]:
    """The arrays of a store with metadata ``meta``."""
    return ("maps", *PER_IMAGE, *(("fingerprint",) if meta.get("fingerprint") else ()))


def _remove_partial_files(location: str) -> None:
    """Temporary files of a local store's interrupted writes (never renamed
    into place; harmless, but not part of the data)."""
    local = _local_path(location)
    if local is None or not os.path.isdir(local):
        return
    for dirpath, _dirs, files in os.walk(local):
        for name in files:
            if _PARTIAL.search(name):
                try:
                    os.remove(os.path.join(dirpath, name))
                except OSError:
                    pass


def read_store(location: str, storage_options: Optional[dict] = None) -> dict:
    """The whole store as NumPy arrays plus ``attrs`` (tests, small stores)."""
    group = _zarr().open_group(os.fspath(location), mode="r", storage_options=storage_options)
    attrs = dict(group.attrs)
    out: dict = {name: np.asarray(group[name][:]) for name in array_names(attrs.get("fastcam", {}))}
    out["attrs"] = attrs
    return out
