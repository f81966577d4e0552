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
      low_res/             (N, h, w) float32 the maps before upsampling (``--save low-res``)
      manifest/            the inputs, listed once by ``prepare`` (:mod:`.manifest`):
        id/ uri/ fingerprint/ target/   (N,) str, str, str, int64
      images/part-NNNNN.parquet   chunk NNNNN's per-row table (:mod:`.table`)
      status/              (N,) uint8   0 pending, 1 done, 2 failed -- written LAST

N counts rows: one per (image, target); ``path`` is the row's image id.

Every per-image array is chunked by C along the image axis, so chunk ``c``
holds images ``[c*C, (c+1)*C)`` in every array, and a chunk is written by
one process at a time, all at once, data first and ``status`` last (two
processes computing the same chunk write the same arrays). Chunk
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
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import UsageError
from .manifest import Manifest, is_url, options_for, redact

STATUS_PENDING, STATUS_DONE, STATUS_FAILED = 0, 1, 2
FORMAT = 1
#: metadata keys that must match for a run to resume a store
CHECKED_KEYS = ("format", "method", "options", "model", "weights", "layer", "size", "dtype",
                "target", "normalize", "precision", "preprocess", "save", "n_images", "paths_sha256")
#: the value of a checked key that stores made before fastcam recorded it imply
#: (every run before ``precision`` existed ran the model in fp32)
IMPLIED = {"precision": "fp32", "save": ["maps"],
           "preprocess": "float32 decoding (fastcam before the uint8 decoder)"}
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
#: seconds since its last write after which a temporary file is taken for a dead
#: writer's: a live one (Zarr's atomic writes, :func:`write_object`) writes its
#: bytes and renames the file within one call, and other processes of the same
#: run may be writing while this one opens the store
PARTIAL_STALE_S = 600.0


def _zarr():
    try:
        import zarr
    except ImportError as e:  # pragma: no cover - the [generate] extra
        raise UsageError("fastcam generate needs zarr >= 3.1: pip install 'fastcam[generate]'") from e
    if int(zarr.__version__.split(".")[0]) < 3:
        raise UsageError(f"fastcam generate needs zarr >= 3.1, found {zarr.__version__}")
    return zarr


#: how many times (0.1 s apart) a store without metadata yet is looked at again
_CREATION_WAITS = 30
#: rows per chunk of the manifest's arrays
MANIFEST_CHUNK = 1 << 16


def _require(group, name: str, **kwargs):
    """The array ``name`` of ``group``: created, or as another process created it
    (the same shape and chunks; zarr's own ``require_array`` refuses a string
    array it reads back with another dtype spelling)."""
    try:
        existing = group[name]
    except KeyError:
        try:
            return group.create_array(name, **kwargs)
        except Exception:  # noqa: BLE001 - created by another process meanwhile
            existing = group[name]
    if tuple(existing.shape) != tuple(kwargs["shape"]) or tuple(existing.chunks) != tuple(kwargs["chunks"]):
        raise ValueError(f"{name}: the store has shape {existing.shape}, chunks {existing.chunks}")
    return existing


def zarr_options(location: str, storage_options: Optional[dict]) -> Optional[dict]:
    """The storage options for Zarr: a local store takes none (they are the inputs')."""
    return options_for(location, storage_options) if is_url(location) else None


def _local_path(location: str) -> Optional[str]:
    if location.startswith("file://"):
        return location[len("file://"):]
    return None if is_url(location) else location


def _location_has_content(location: str, storage_options: Optional[dict]) -> bool:
    local = _local_path(location)
    if local is not None:
        return os.path.exists(local) and (not os.path.isdir(local) or bool(os.listdir(local)))
    import fsspec

    fs, path = fsspec.core.url_to_fs(location, **options_for(location, storage_options))
    try:
        return bool(fs.exists(path) and (fs.isfile(path) or fs.ls(path)))
    except FileNotFoundError:
        return False


def _only_temporaries(location: str) -> bool:
    """A local folder that holds nothing yet but temporary files (and, renamed
    into place since it was opened, the group's metadata): a group another process
    is creating."""
    local = _local_path(location)
    if local is None or not os.path.isdir(local):
        return False
    return all(_PARTIAL.search(name) or name == "zarr.json" for name in os.listdir(local))


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

    def __init__(self, group, location: str, storage_options: Optional[dict] = None):
        self.group, self.location, self.storage_options = group, location, storage_options
        self.meta: dict = dict(group.attrs["fastcam"])
        self.n_images: int = int(self.meta["n_images"])
        self.chunk_size: int = int(self.meta["chunk_size"])
        #: the fingerprint kind of :mod:`.fingerprint`, None for a store made without
        self.fingerprint_kind: Optional[str] = self.meta.get("fingerprint")
        self.arrays = {name: group[name] for name in array_names(self.meta)}

    # -- opening -----------------------------------------------------------
    @classmethod
    def open_or_create(cls, location: str, meta: dict, manifest: Manifest, *, chunk_size: int,
                       storage_options: Optional[dict] = None,
                       low_res_shape: Optional[tuple[int, int]] = None,
                       _looked_again: bool = False) -> "SaliencyStore":
        """Open ``location`` for this run: create it, or check that its metadata
        matches ``meta`` (else :class:`UsageError`). Creation never deletes
        anything but a store whose own creation was interrupted with other
        shapes, so processes that prepare the same run at once all succeed;
        anything that is not a fastcam store is never overwritten."""
        zarr = _zarr()
        location = os.fspath(location)
        shown = redact(location)
        wipe = False
        for attempt in range(_CREATION_WAITS + 1):
            if not _location_has_content(location, storage_options):
                break
            try:
                group = zarr.open_group(location, mode="r+", storage_options=zarr_options(location, storage_options))
                stored = group.attrs.get("fastcam")
            except Exception as e:  # noqa: BLE001
                if attempt < _CREATION_WAITS and _only_temporaries(location):
                    time.sleep(0.1)        # another process is writing the group's metadata this moment
                    continue
                raise UsageError(f"{shown} exists and is not a fastcam store "
                                 f"({type(e).__name__}); choose another --out") from None
            if not isinstance(stored, dict):
                if attempt < _CREATION_WAITS and not group.attrs:
                    time.sleep(0.1)        # another process may be creating it this moment
                    continue
                raise UsageError(f"{shown} is a Zarr group without fastcam metadata; choose another --out")
            if stored.get("state") == "ready":
                diff = describe_mismatch(stored, meta)
                if diff:
                    raise UsageError(f"{shown} was made by a different run ("
                                     + "; ".join(diff) + "); use another --out or the same arguments")
                if stored.get("fingerprint") is None:
                    warnings.warn(f"{shown} was made before fastcam recorded image fingerprints: "
                                  "images changed since are not detected", stacklevel=3)
                elif stored["fingerprint"] != meta.get("fingerprint"):
                    raise UsageError(f"{shown} records {stored['fingerprint']} fingerprints, this run "
                                     f"asked for {meta.get('fingerprint')}; use --fingerprint "
                                     f"{stored['fingerprint']}")
                if stored.get("fastcam_version") != meta.get("fastcam_version"):
                    warnings.warn(f"{shown} was made by fastcam {stored.get('fastcam_version')}, "
                                  f"this is {meta.get('fastcam_version')}", stacklevel=3)
                _remove_partial_files(location)
                return cls(group, location, storage_options)
            # state "creating": a run died while creating it (nothing was computed; made
            # again from scratch when it was another run), or another process is creating
            # it now for the same run (created beside it, deleting nothing)
            wipe = bool(describe_mismatch(stored, meta)) or int(stored.get("chunk_size", -1)) != int(chunk_size)
            break
        try:
            return cls._create(location, meta, manifest, chunk_size, storage_options, low_res_shape, wipe)
        except zarr.errors.ContainsGroupError:
            if _looked_again:
                raise
            # another process created the group between the look above and this creation:
            # look again, checking its metadata like any existing store's
            return cls.open_or_create(location, meta, manifest, chunk_size=chunk_size,
                                      storage_options=storage_options, low_res_shape=low_res_shape,
                                      _looked_again=True)

    @classmethod
    def _create(cls, location, meta, manifest, chunk_size, storage_options, low_res_shape,
                wipe: bool = False) -> "SaliencyStore":
        zarr = _zarr()
        n, size = int(meta["n_images"]), int(meta["size"])
        if len(manifest) != n:
            raise ValueError("the manifest and the metadata disagree on the number of rows")
        attrs = {"fastcam": {**_jsonable(meta), "chunk_size": int(chunk_size), "state": "creating"}}
        options = zarr_options(location, storage_options)
        if wipe:
            group = zarr.open_group(location, mode="w", storage_options=options, zarr_format=3, attributes=attrs)
        else:
            group = zarr.open_group(location, mode="a", storage_options=options, zarr_format=3)
            if not isinstance(group.attrs.get("fastcam"), dict):
                group.attrs.update(attrs)
        cls._require_arrays(group, meta, n, size, chunk_size, low_res_shape)
        store = cls.__new__(cls)
        store.group, store.location, store.storage_options = group, location, storage_options
        store._write_manifest_arrays(manifest)
        attrs["fastcam"]["state"] = "ready"       # the store is usable from here on
        group.attrs.update(attrs)
        return cls(group, location, storage_options)

    @staticmethod
    def _require_arrays(group, meta, n, size, chunk_size, low_res_shape) -> None:
        _require(group, "maps", shape=(n, size, size), chunks=(chunk_size, size, size),
                            dtype=meta["dtype"], fill_value=float("nan"),
                            dimension_names=("image", "y", "x"),
                            attributes={"description": "saliency maps in [0, 1]; NaN where no map "
                                                       "(failed or pending image)"})
        if "low_res" in meta.get("save", ()):
            h, w = low_res_shape
            _require(group, "low_res", shape=(n, h, w), chunks=(chunk_size, h, w), dtype="float32",
                                fill_value=float("nan"), dimension_names=("image", "h", "w"),
                                attributes={"description": "ReLU(sum_k w_k A_k) at the layer's "
                                                           "resolution, before upsampling and scaling"})
        for name, (dtype, fill) in PER_IMAGE.items():
            extra = {}
            if name == "status":
                extra = {"attributes": {"codes": {"0": "pending", "1": "done", "2": "failed"}}}
            _require(group, name, shape=(n,), chunks=(chunk_size,), dtype=dtype,
                                fill_value=fill, dimension_names=("image",), **extra)
        if meta.get("fingerprint"):
            _require(group, "fingerprint", shape=(n,), chunks=(chunk_size,), dtype=str, fill_value="",
                                dimension_names=("image",), attributes={"kind": meta["fingerprint"]})
        m = min(MANIFEST_CHUNK, max(n, 1))
        for name, dtype, fill in (("id", str, ""), ("uri", str, ""), ("fingerprint", str, ""),
                                  ("target", "int64", -1)):
            _require(group, f"manifest/{name}", shape=(n,), chunks=(m,), dtype=dtype, fill_value=fill,
                                dimension_names=("image",))

    # -- the manifest -------------------------------------------------------------
    def _write_manifest_arrays(self, manifest: Manifest) -> None:
        g = self.group
        g["manifest/id"][:] = np.asarray(manifest.ids, dtype=object)
        g["manifest/uri"][:] = np.asarray(manifest.uris, dtype=object)
        g["manifest/fingerprint"][:] = np.asarray(manifest.fingerprints, dtype=object)
        g["manifest/target"][:] = np.asarray(manifest.targets, dtype=np.int64)

    def update_manifest(self, manifest: Manifest) -> None:
        """Record this listing's URIs and fingerprints (the ids and targets are the
        store's: checked through ``paths_sha256`` before)."""
        g = self.group
        if list(np.asarray(g["manifest/uri"][:], dtype=object)) != manifest.uris:
            g["manifest/uri"][:] = np.asarray(manifest.uris, dtype=object)
        if list(np.asarray(g["manifest/fingerprint"][:], dtype=object)) != manifest.fingerprints:
            g["manifest/fingerprint"][:] = np.asarray(manifest.fingerprints, dtype=object)

    def read_manifest(self) -> Manifest:
        g = self.group
        return Manifest([str(v) for v in g["manifest/id"][:]], [str(v) for v in g["manifest/uri"][:]],
                        [str(v) for v in g["manifest/fingerprint"][:]],
                        np.asarray(g["manifest/target"][:], dtype=np.int64), str(self.meta.get("images", "")))

    @classmethod
    def attach(cls, location: str, storage_options: Optional[dict] = None) -> "SaliencyStore":
        """Open a store another process created (distributed ranks)."""
        group = _zarr().open_group(os.fspath(location), mode="r+",
                                     storage_options=zarr_options(os.fspath(location), storage_options))
        return cls(group, os.fspath(location), storage_options)

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

    def chunk_done(self, c: int) -> bool:
        """Whether chunk ``c``'s status record is written (and readable)."""
        r = self.chunk_range(c)
        try:
            return bool((np.asarray(self.arrays["status"][r.start:r.stop]) != STATUS_PENDING).all())
        except Exception:  # noqa: BLE001 - a torn record: not done
            return False

    def invalidate(self, chunks: Sequence[int]) -> None:
        """Make ``chunks`` pending again (their status record removed first)."""
        for c in chunks:
            r = self.chunk_range(c)
            self.arrays["status"][r.start:r.stop] = STATUS_PENDING

    def write_chunk(self, c: int, *, maps: np.ndarray, paths: Sequence[str], predicted: np.ndarray,
                    probability: np.ndarray, target: np.ndarray, error: Sequence[str],
                    status: np.ndarray, fingerprint: Optional[Sequence[str]] = None,
                    low_res: Optional[np.ndarray] = None, table: Optional[bytes] = None) -> None:
        """Write chunk ``c`` of every array and its table (``table``: Parquet
        bytes), all at once on threads, then ``status`` last."""
        r = self.chunk_range(c)
        s = slice(r.start, r.stop)
        if len(maps) != len(r) or len(status) != len(r):
            raise ValueError(f"chunk {c} holds {len(r)} images, got {len(maps)}")
        if (np.asarray(status) == STATUS_PENDING).any():
            raise ValueError("a written chunk cannot hold pending images")
        a = self.arrays
        writes = [("maps", maps), ("path", np.asarray(list(paths), dtype=object)), ("predicted", predicted),
                  ("probability", probability), ("target", target),
                  ("error", np.asarray(list(error), dtype=object))]
        if "fingerprint" in a:
            if fingerprint is None or len(fingerprint) != len(r):
                raise ValueError(f"chunk {c}: the store records fingerprints, give one per image")
            writes.append(("fingerprint", np.asarray(list(fingerprint), dtype=object)))
        if "low_res" in a:
            if low_res is None:
                raise ValueError(f"chunk {c}: the store keeps the low-resolution maps, give them")
            writes.append(("low_res", low_res))

        def put(item):
            name, value = item
            if name == "table":
                write_object(self.location, table_key(c), value, self.storage_options)
            else:
                a[name][s] = value

        if table is not None:
            writes.append(("table", table))
        with ThreadPoolExecutor(max_workers=min(8, len(writes))) as pool:
            list(pool.map(put, writes))
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
    return ("maps", *PER_IMAGE, *(("fingerprint",) if meta.get("fingerprint") else ()),
            *(("low_res",) if "low_res" in meta.get("save", ()) else ()))


def table_key(c: int) -> str:
    """Chunk ``c``'s table, relative to the store."""
    return f"images/part-{c:05d}.parquet"


def write_object(location: str, key: str, data: bytes, storage_options: Optional[dict] = None) -> None:
    """Put ``data`` at ``location/key`` whole: a local file is written beside and
    renamed into place, an object store's put is whole."""
    local = _local_path(location)
    if local is not None:
        path = os.path.join(local, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.partial"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return
    import fsspec

    fs, root = fsspec.core.url_to_fs(location, **options_for(location, storage_options))
    fs.pipe_file(f"{root.rstrip('/')}/{key}", data)


def _remove_partial_files(location: str, stale_s: float = PARTIAL_STALE_S) -> None:
    """Temporary files of a local store's interrupted writes (never renamed into
    place; harmless, but not part of the data) not written for ``stale_s``
    seconds. Younger ones are left: they may be another process's write in
    flight, whose rename would fail without them."""
    local = _local_path(location)
    if local is None or not os.path.isdir(local):
        return
    cutoff = time.time() - stale_s
    for dirpath, _dirs, files in os.walk(local):
        for name in files:
            if _PARTIAL.search(name):
                path = os.path.join(dirpath, name)
                try:
                    if os.stat(path).st_mtime < cutoff:
                        os.remove(path)
                except OSError:
                    pass


def read_store(location: str, storage_options: Optional[dict] = None) -> dict:
    """The whole store as NumPy arrays plus ``attrs`` (tests, small stores)."""
    group = _zarr().open_group(os.fspath(location), mode="r",
                                     storage_options=zarr_options(os.fspath(location), storage_options))
    attrs = dict(group.attrs)
    out: dict = {name: np.asarray(group[name][:]) for name in array_names(attrs.get("fastcam", {}))}
    out["attrs"] = attrs
    return out
