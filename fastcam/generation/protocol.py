"""The chunk protocol of ``fastcam generate``: :func:`prepare`, :func:`run_chunks`,
:func:`finalize`. The store is the only coordinator; executors
(:mod:`.executors`) only decide which process runs which chunk ids.

* :func:`prepare` (once per run, on a driver; safe to call from several
  processes at once): lists the inputs into the manifest stored with the store,
  creates the store or checks it was made by the same run, makes the chunks
  holding changed images (and, asked, failed ones) pending again, and returns
  the pending chunk ids.
* :func:`run_chunks` (on any worker): reads the config and the manifest from the
  store, reads and decodes the chunks' images, computes and commits them. A
  chunk already done is skipped (checked as it is reached), so retries and
  duplicate attempts are safe: a chunk computed twice writes the same arrays,
  its status last.
* :func:`finalize`: records completion once every chunk is written.
"""
from __future__ import annotations

import os
import platform
import queue
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Union

import numpy as np
import torch
from torch import nn

from ..errors import UsageError
from ..methods import METHODS, BaseCAM
from ..models.loading import BUNDLED, load_model, sha256_state
from ..preflight import build_explainer, check_device, check_out_dir, check_precision, check_size
from .compute import compute_chunk
from .config import DTYPES, resolve_config
from .dataset import ChunkDataset, chunk_batches
from .decode import check_preprocess
from .fingerprint import check_kind, current_fingerprints
from .manifest import ImagesSpec, Manifest, is_url, make_manifest, redact
from .store import IMPLIED, STATUS_FAILED, STATUS_PENDING, SaliencyStore
from .summary import GenerateSummary
from .table import chunk_table, have_pyarrow

#: how every chunk's random generators are seeded (recorded in the store)
SEED_POLICY = "torch.manual_seed(chunk index) before each chunk (CPU and the device's generator)"
#: what a map is (recorded in the store)
MAP_DEFINITION = ("per-image min-max scaled ReLU(sum_k w_k A_k) of the target layer, bilinearly "
                  "upsampled to the input size; row r explains target[r]")


@dataclass(frozen=True)
class GenerateConfig:
    """What a run is asked to compute (:func:`prepare`'s ``config``); the
    arguments of :func:`fastcam.generate` of the same names."""

    method: str = "gradcam"
    options: Optional[dict] = None
    model: Union[str, nn.Module] = BUNDLED
    weights: Optional[str] = None
    layer: Optional[str] = None
    target: Union[str, int, os.PathLike, None] = "predicted"
    batch_size: int = 32
    size: int = 224
    dtype: str = "float16"
    normalize: Any = "auto"
    precision: str = "fp32"
    preprocess: str = "crop"
    save: tuple = ()
    fingerprint: str = "stat"
    retry_failed: bool = False
    image_column: str = "image"
    id_column: Optional[str] = None
    label_column: Optional[str] = None

    def check(self, device: Union[str, torch.device, None]) -> None:
        """The checks before any work (a :class:`UsageError` says what is wrong)."""
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        check_size(self.size)
        check_kind(self.fingerprint)
        check_preprocess(self.preprocess)
        check_device(device)
        check_precision(self.precision, default_device(device))
        if int(self.batch_size) < 1:
            raise UsageError(f"--batch-size must be >= 1, got {self.batch_size}")


@dataclass
class Prepared:
    """What :func:`prepare` found: the pending chunk ids (in order), how many rows
    were done before, the ids of changed images and the chunks whose maps were
    missing (both made pending again), and the loaded model (for a worker in
    the same process)."""

    pending: list[int]
    skipped: int
    n_rows: int
    chunk_size: int
    changed: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    model: Any = None


@dataclass
class ChunkCounts:
    """What :func:`run_chunks` did: rows computed (of which failed) and chunks."""

    computed: int = 0
    failed: int = 0
    chunks: int = 0

    def __add__(self, other: "ChunkCounts") -> "ChunkCounts":
        return ChunkCounts(self.computed + other.computed, self.failed + other.failed, self.chunks + other.chunks)


def default_device(device: Union[str, torch.device, None]) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _weights_sha256(loaded) -> Optional[str]:
    w = loaded.weights
    if isinstance(w, dict) and w.get("sha256"):
        return w["sha256"]
    if w is None:
        return None
    return sha256_state(loaded.model)      # the bundled model's state


def prepare(source: ImagesSpec, out: Union[str, os.PathLike], config: GenerateConfig, *,
            storage_options: Optional[dict] = None, device: Union[str, torch.device, None] = None,
            verbose: bool = False) -> Prepared:
    """List ``source`` into the manifest, create or check the store ``out`` and
    return its pending chunks (see the module)."""
    config.check(device)
    out = os.fspath(out)
    if not is_url(out):
        check_out_dir(out[len("file://"):] if out.startswith("file://") else out)
    dev = default_device(device)
    loaded = load_model(config.model, config.weights, layer=config.layer, size=int(config.size), device=dev)
    manifest, target_record = make_manifest(source, config.target, storage_options=storage_options,
                                            image_column=config.image_column, id_column=config.id_column,
                                            label_column=config.label_column)
    run, cam = resolve_config(loaded, manifest, target_record, method=config.method, options=config.options,
                              size=int(config.size), dtype=config.dtype, normalize=config.normalize,
                              precision=config.precision, preprocess=config.preprocess,
                              save=tuple(config.save))
    low_res_shape = None
    if "low_res" in run.save:
        cam(torch.zeros(1, 3, run.size, run.size, device=dev))     # the layer's map size
        low_res_shape = tuple(int(v) for v in cam.last.low_res[0].shape[-2:])
    meta = {**run.metadata(manifest.source), "fingerprint": config.fingerprint,
            # descriptive (not checked on resume)
            "load": {"model": config.model if isinstance(config.model, str) else None,
                     "weights_path": os.path.abspath(config.weights) if config.weights else None},
            "weights_sha256": _weights_sha256(loaded), "torch_version": torch.__version__,
            "python": platform.python_version(), "device": str(dev), "backend": _backend(dev),
            "map_definition": MAP_DEFINITION, "seed_policy": SEED_POLICY, "table": have_pyarrow(),
            "image_column": config.image_column}
    store = SaliencyStore.open_or_create(out, meta, manifest, chunk_size=int(config.batch_size),
                                         storage_options=storage_options, low_res_shape=low_res_shape)
    if store.chunk_size != int(config.batch_size):
        warnings.warn(f"{redact(out)} keeps its chunk size {store.chunk_size}: that is the batch size "
                      "of this run", stacklevel=2)
    store.update_manifest(manifest)
    status = store.status()
    changed = _changed_rows(store, manifest, status, storage_options)
    missing = store.missing_map_chunks(status)
    again = {i // store.chunk_size for i in changed} | set(missing)
    if config.retry_failed:
        again |= {c for c in range(store.n_chunks)
                  if (status[store.chunk_range(c).start:store.chunk_range(c).stop] == STATUS_FAILED).any()}
    store.invalidate(sorted(again))
    pending = store.pending_chunks()
    todo = sum(len(store.chunk_range(c)) for c in pending)
    if verbose and (changed or missing):
        ids = [manifest.ids[i] for i in changed]
        shown = ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
        print(f"fastcam generate: recomputing {len(ids)} image(s) changed since they were "
              f"computed ({shown}) and {len(missing)} chunk(s) whose maps are missing "
              f"{missing[:5]}", file=sys.stderr, flush=True)
    return Prepared(pending, store.n_images - todo, store.n_images, store.chunk_size,
                    [manifest.ids[i] for i in changed], missing, loaded)


def _backend(device: torch.device) -> str:
    from ..backend import get_backend, resolve

    chosen = get_backend()
    return resolve(device) if chosen == "auto" else chosen


def _changed_rows(store: SaliencyStore, manifest: Manifest, status: np.ndarray,
                  storage_options: Optional[dict]) -> list[int]:
    """Computed rows whose image changed since (their recorded fingerprint differs)."""
    if store.fingerprint_kind is None:
        return []
    computed = [i for i in range(store.n_images) if status[i] != STATUS_PENDING]
    return store.changed_images(current_fingerprints(manifest, computed, store.fingerprint_kind,
                                                     storage_options), status)


def _open_for_work(out: str, storage_options: Optional[dict], wait_s: float = 60.0) -> SaliencyStore:
    """The prepared store (waiting while another process is still creating it)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            store = SaliencyStore.attach(out, storage_options)
        except Exception as e:  # noqa: BLE001
            raise UsageError(f"{redact(out)} is not a fastcam store ({type(e).__name__}); "
                             "run prepare first") from None
        if store.meta.get("state") == "ready" and "manifest" in store.group:
            return store
        if store.meta.get("state") != "creating" or time.monotonic() > deadline:
            raise UsageError(f"{redact(out)} was not prepared by this fastcam (no manifest); run prepare first")
        time.sleep(0.2)


def explainer_for(store: SaliencyStore, device: torch.device, model: Optional[nn.Module] = None) -> BaseCAM:
    """The store's explainer on ``device``: its model loaded as recorded (a
    module given as ``model`` when the store was made from one)."""
    meta = store.meta
    if model is None:
        spec = meta.get("load", {})
        if not spec.get("model"):
            raise UsageError(f"{redact(store.location)} was made with a model object: pass model=")
        model = load_model(spec["model"], spec.get("weights_path"), layer=meta["layer"], size=meta["size"],
                           device=device, hash_weights=False).model
    else:
        model = model.to(device).eval()
    norm = meta["normalize"]
    norm = None if norm is None else (tuple(norm[0]), tuple(norm[1]))
    return build_explainer(METHODS[meta["method"]], model, meta["layer"], norm, meta["options"],
                           meta.get("precision", IMPLIED["precision"]))


class ChunkWorker:
    """What computes and commits chunks of a prepared store on one device: the
    store, its explainer and manifest, the dataset that reads and decodes a
    chunk (:meth:`dataset`), and :meth:`commit` for a decoded chunk. Executors
    feed it: :func:`run_chunks` from a DataLoader, Ray actors from decoding tasks."""

    def __init__(self, out: Union[str, os.PathLike], device: Union[str, torch.device, None] = None, *,
                 storage_options: Optional[dict] = None, model: Optional[nn.Module] = None):
        self.out = os.fspath(out)
        self.device = default_device(device)
        self.storage_options = storage_options
        self.store = _open_for_work(self.out, storage_options)
        self.cam = explainer_for(self.store, self.device, model)
        self.manifest = self.store.read_manifest()
        meta = self.store.meta
        self.geometry = meta["preprocess"]["geometry"]
        self.size = int(meta["size"])
        self.low_res = tuple(self.store.arrays["low_res"].shape[1:]) if "low_res" in self.store.arrays else None
        self.table_meta = {k: v for k, v in meta.items() if k not in ("complete", "n_done", "n_failed")}
        self.write_table = bool(meta.get("table")) and have_pyarrow()
        self.writer: Optional[_ChunkWriter] = None

    def dataset(self) -> ChunkDataset:
        meta = self.store.meta
        return ChunkDataset(self.manifest, self.store.chunk_size, self.size, self.geometry,
                            image_column=meta.get("image_column", "image"), storage_options=self.storage_options,
                            hash_bytes=self.store.fingerprint_kind == "sha256")

    def commit(self, batch, *, wait: bool = True) -> ChunkCounts:
        """Compute the decoded chunk ``batch`` and commit it (status last); a
        chunk already done is skipped. ``wait``: return once it is written (else
        it is written on a thread while the next one computes; :meth:`close` waits)."""
        c, store = batch.chunk, self.store
        r = store.chunk_range(c)
        if store.chunk_done(c):
            return ChunkCounts()
        t0 = time.perf_counter()
        manifest = self.manifest
        result = compute_chunk(self.cam, batch, manifest.targets[r.start:r.stop], seed=c, size=self.size,
                               dtype=DTYPES[store.meta["dtype"]], device=self.device, low_res=self.low_res)
        share = (time.perf_counter() - t0) / len(r)
        ids = manifest.ids[r.start:r.stop]
        prints = None
        if store.fingerprint_kind == "sha256":
            prints = list(batch.sha256)
        elif store.fingerprint_kind is not None:
            prints = manifest.fingerprints[r.start:r.stop]
        table = None
        if self.write_table:
            table = chunk_table(rows=r, ids=ids, uris=manifest.uris[r.start:r.stop],
                                fingerprints=manifest.fingerprints[r.start:r.stop], result=result,
                                heights=batch.heights.numpy(), widths=batch.widths.numpy(),
                                seconds=batch.seconds.numpy() + share, size=self.size, preprocess=self.geometry,
                                device=str(self.device), metadata=self.table_meta)
        arrays = dict(maps=result.maps, paths=ids, predicted=result.predicted, probability=result.probability,
                      target=result.target, error=result.error, status=result.status, fingerprint=prints,
                      low_res=result.low_res, table=table)
        if wait:
            store.write_chunk(c, **arrays)
        else:
            if self.writer is None:
                self.writer = _ChunkWriter(store)
            self.writer.put(c, **arrays)
        return ChunkCounts(len(r), int((result.status == STATUS_FAILED).sum()), 1)

    def close(self) -> None:
        """Wait for the chunks being written."""
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()


def run_chunks(out: Union[str, os.PathLike], ids: Iterable[int], device: Union[str, torch.device, None] = None, *,
               storage_options: Optional[dict] = None, model: Optional[nn.Module] = None,
               workers: Optional[int] = None, progress: bool = False, progress_desc: str = "generate"
               ) -> ChunkCounts:
    """Compute and commit chunks ``ids`` of the prepared store ``out`` (see the
    module); ``model``: the module, when the store was made from one (or to
    reuse one already loaded). Returns what this call computed."""
    worker = ChunkWorker(out, device, storage_options=storage_options, model=model)
    store = worker.store
    workers = default_workers() if workers is None else int(workers)
    ids = list(ids)
    bar = None
    if progress and ids:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(store.chunk_range(c)) for c in ids), unit="img", desc=progress_desc,
                   dynamic_ncols=True, smoothing=0.05, file=sys.stderr)
    # the chunks are taken lazily: one done meanwhile (another process) is skipped
    todo = (c for c in ids if not store.chunk_done(c))
    batches = chunk_batches(worker.dataset(), todo, workers=workers, pin_memory=worker.device.type == "cuda")
    counts = ChunkCounts()
    try:
        for batch in batches:
            got = worker.commit(batch, wait=False)
            counts = counts + got
            if bar is not None:
                bar.update(len(store.chunk_range(batch.chunk)))
                if counts.failed:
                    bar.set_postfix(failed=counts.failed, refresh=False)
        worker.close()
    finally:
        if bar is not None:
            bar.close()
    return counts


def finalize(out: Union[str, os.PathLike], *, storage_options: Optional[dict] = None, computed: int = 0,
             computed_failed: int = 0, skipped: int = 0, seconds: float = 0.0, world: int = 1) -> GenerateSummary:
    """Record completion in the store once every chunk is written (the same
    values however many runs and processes it took) and summarise it; the
    keyword counts describe this run for the summary."""
    store = SaliencyStore.attach(os.fspath(out), storage_options)
    counts = store.finalize()
    failures = []
    if counts.failed:
        status = store.status()
        bad = np.flatnonzero(status == STATUS_FAILED)
        errors = store.arrays["error"]
        paths = store.arrays["path"]
        failures = [(str(paths[int(i)]), str(errors[int(i)])) for i in bad[:10]]
        reasons: dict = {}
        for e in np.asarray(errors[:], dtype=object)[bad]:
            key = str(e).split(":", 1)[0] or "unknown"
            reasons[key] = reasons.get(key, 0) + 1
    else:
        reasons = {}
    return GenerateSummary(redact(store.location), counts.n_images, counts.done, counts.failed, counts.pending,
                           computed, computed_failed, skipped, seconds, world, failures, reasons)


class _ChunkWriter:
    """Commits finished chunks on a thread so compression and I/O overlap the
    next chunk's compute; at most ``depth`` chunks wait (bounded memory)."""

    def __init__(self, store: SaliencyStore, depth: int = 2):
        self.store = store
        self.queue: "queue.Queue" = queue.Queue(maxsize=depth)
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._work, name="fastcam-writer", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    self.store.write_chunk(item[0], **item[1])
                except BaseException as e:  # noqa: BLE001 - re-raised on the main thread
                    self.error = e

    def _check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"writing to the store failed: {redact(repr(self.error))}") from self.error

    def put(self, c: int, **arrays: Any) -> None:
        self._check()
        self.queue.put((c, arrays))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._check()


def default_workers() -> int:
    procs = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cpus // max(1, procs) - 1))
