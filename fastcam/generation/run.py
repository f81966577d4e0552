"""``fastcam.generate(...)``: saliency maps for a whole image collection into one
resumable Zarr store, on one process or many (``torchrun``).

Rank 0 loads the model, resolves the run's :class:`~.config.RunConfig`, opens
the store (creating it, or checking that it was made by the same config) and
makes the :class:`~.plan.Plan` of the chunks still to do, which every rank
receives. Rank ``r`` of ``W`` computes pending chunks ``r, r+W, r+2W, ...``: a
DataLoader decodes them in worker processes while :func:`~.compute.compute_chunk`
runs the model, and a writer thread commits finished chunks to the store while
the next one is computed. A barrier ends the run; rank 0 records completion and
every rank returns the summary.
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
import warnings
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from ..errors import UsageError
from ..methods import METHODS, BaseCAM
from ..models.loading import BUNDLED, load_model
from ..preflight import build_explainer, check_device, check_out_dir, check_precision, check_size
from .compute import compute_chunk
from .config import DTYPES, resolve_config
from .dataset import ImageDataset, ImagesSpec, chunk_batches, list_images
from .distributed import Distributed
from .fingerprint import check_kind, fingerprints
from .plan import Plan
from .store import STATUS_FAILED, SaliencyStore, is_url
from .summary import GenerateSummary


def generate(images: ImagesSpec, out: Union[str, os.PathLike], method: str = "gradcam", *,
             options: Optional[dict] = None, model: Union[str, nn.Module] = BUNDLED,
             weights: Optional[str] = None, layer: Optional[str] = None,
             target: Union[str, int, os.PathLike, None] = "predicted", batch_size: int = 32,
             workers: Optional[int] = None, size: int = 224, dtype: str = "float16",
             device: Union[str, torch.device, None] = None, normalize: Any = "auto",
             precision: str = "fp32", storage_options: Optional[dict] = None, retry_failed: bool = False,
             fingerprint: str = "stat", progress: bool = True, verbose: bool = True) -> GenerateSummary:
    """Saliency maps for every image of ``images`` into the Zarr store ``out``.

    Args:
        images: a folder (recursive), a text file of paths, or a sequence of paths.
        out: the store (a local path or any fsspec URL, with ``storage_options``).
            An existing store made with the same arguments is resumed: its done
            chunks are skipped. Other arguments against it raise :class:`GenerateError`.
        method, options: a name of ``fastcam.METHODS`` and its constructor options.
        model: ``"efficientnet_lite0"`` (bundled, pretrained), ``"torchvision:NAME"``
            or an ``nn.Module``; ``weights``: a state-dict file for it.
        layer: the target layer's dotted name (default: the model's last spatial layer).
        target: ``"predicted"``, a class index, or a file of ``PATH CLASS`` lines.
        batch_size: images per batch, and per chunk of a new store (an existing
            store keeps its own chunk size).
        workers: DataLoader worker processes decoding images (default: the CPUs
            per process minus one, 1 to 8).
        size, dtype: the square input/map size and the maps' dtype (float16|float32).
        device: default ``cuda`` when available (``cuda:LOCAL_RANK`` under torchrun).
        normalize: ``"auto"`` (the model's own ``normalization``, ImageNet mean/std
            otherwise), None, ``(mean, std)``, or another form
            :func:`fastcam.preflight.resolve_normalize` takes; images are
            pixel-space in [0, 1].
        precision: how the model runs (:class:`fastcam.engine.Engine`): ``"fp32"``
            (default), ``"bf16"`` or ``"fp16"`` (autocast; the CAM algebra stays
            float32). Checked against the device before any work (a precision it
            cannot run natively is a :class:`GenerateError`, never a fallback) and
            recorded in the store's config: a resume with another precision is
            refused (a store made before fastcam recorded it counts as fp32).
        retry_failed: also recompute chunks holding failed images.
        fingerprint: what a new store records of each image file (``"stat"``:
            size and mtime; ``"sha256"``: a hash); a resume recomputes the chunks
            holding an image whose fingerprint changed (an existing store keeps
            its kind), and the done chunks whose maps are missing.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank calls this with the same
    arguments; each computes a disjoint share of the pending chunks.
    """
    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    size, batch_size = check_size(size), int(batch_size)
    check_kind(fingerprint)
    check_device(device)
    check_precision(precision, _device(device))
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    workers = _default_workers() if workers is None else int(workers)
    if workers < 0:
        raise UsageError(f"--workers must be >= 0, got {workers}")
    out = os.fspath(out)
    if not is_url(out):
        check_out_dir(out[len("file://"):] if out.startswith("file://") else out)
    dist = Distributed.start(device)
    try:
        if dist.rank == 0:
            with dist.failures_shared():
                loaded = load_model(model, weights, layer=layer, size=size, device=dist.device)
                image_list = list_images(images)
                config, targets = resolve_config(loaded, image_list, method=method, options=options,
                                                 target=target, size=size, dtype=dtype, normalize=normalize,
                                                 precision=precision)
                meta = {**config.metadata(image_list.source), "fingerprint": fingerprint}
                store = SaliencyStore.open_or_create(out, meta, image_list.paths,
                                                     chunk_size=batch_size, storage_options=storage_options)
                plan = Plan.make(config, image_list, targets, store, retry_failed)
            dist.broadcast(plan)
            if store.chunk_size != batch_size:
                warnings.warn(f"{out} keeps its chunk size {store.chunk_size}: that is the batch size "
                              "of this run", stacklevel=2)
        else:
            plan = dist.receive()
            store = SaliencyStore.attach(out, storage_options)
            loaded = load_model(model, weights, layer=plan.config.layer, device=dist.device, hash_weights=False)
        config = plan.config
        cam = build_explainer(METHODS[config.method], loaded.model, config.layer, config.normalize,
                              config.options, config.precision)
        if verbose and dist.rank == 0 and (plan.changed or plan.missing):
            shown = ", ".join(plan.changed[:5]) + (" ..." if len(plan.changed) > 5 else "")
            print(f"fastcam generate: recomputing {len(plan.changed)} image(s) changed since they were "
                  f"computed ({shown}) and {len(plan.missing)} chunk(s) whose maps are missing "
                  f"{plan.missing[:5]}", file=sys.stderr, flush=True)
        if verbose and dist.rank == 0:
            print(f"fastcam generate: {config.n_images} images, {plan.n_pending} to compute in "
                  f"{len(plan.pending)} chunk(s) of {store.chunk_size}, {plan.skipped} already done; "
                  f"{config.method} on {config.model}:{config.layer}, precision {config.precision}, "
                  f"{dist.world} process(es), "
                  f"device {dist.device} -> {out}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        computed, failed = _compute_share(dist, plan, store, cam, workers=workers, progress=progress)
        dist.barrier()
        seconds = time.perf_counter() - t0
        computed, failed = dist.sum([computed, failed])
        summary = _summary(plan, store, computed, failed, seconds, dist.world) if dist.rank == 0 else None
        if summary is not None and verbose:
            print(summary.format(), flush=True)
        return dist.broadcast(summary)
    finally:
        dist.close()


def _compute_share(dist: Distributed, plan: Plan, store: SaliencyStore, cam: BaseCAM, *, workers: int,
                   progress: bool) -> tuple[int, int]:
    """Compute and commit this rank's chunks; (images computed, of which failed)."""
    mine = plan.chunks_of(dist.rank, dist.world)
    chunks = [list(store.chunk_range(c)) for c in mine]
    config = plan.config
    bar = None
    if progress and dist.rank == 0 and chunks:
        from tqdm.auto import tqdm

        desc = "generate" if dist.world == 1 else f"generate (rank 0 of {dist.world})"
        bar = tqdm(total=sum(map(len, chunks)), unit="img", desc=desc, dynamic_ncols=True, smoothing=0.05,
                   file=sys.stderr)
    # the loader's workers fork here, before the writer thread starts
    batches = chunk_batches(ImageDataset(plan.images, config.size), chunks, workers=workers,
                            pin_memory=dist.device.type == "cuda")
    writer = _ChunkWriter(store)
    computed = failed = 0
    try:
        for c, batch in zip(mine, batches):
            idx = batch.indices.numpy()
            if idx[0] != store.chunk_range(c).start:
                raise RuntimeError("the loader delivered chunks out of order")
            result = compute_chunk(cam, batch, None if plan.targets is None else plan.targets[idx], seed=c,
                                   size=config.size, dtype=DTYPES[config.dtype], device=dist.device)
            prints = None if plan.fingerprint is None else fingerprints(plan.images, idx, plan.fingerprint)
            writer.put(c, paths=[plan.images.paths[i] for i in idx], fingerprint=prints, **result._asdict())
            computed += len(idx)
            failed += int((result.status == STATUS_FAILED).sum())
            if bar is not None:
                bar.update(len(idx))
                if failed:
                    bar.set_postfix(failed=failed, refresh=False)
        writer.close()
    finally:
        if bar is not None:
            bar.close()
    return computed, failed


def _summary(plan: Plan, store: SaliencyStore, computed: int, failed: int, seconds: float,
             world: int) -> GenerateSummary:
    """Rank 0: record completion in the store and summarise the run."""
    counts = store.finalize()
    failures = []
    if counts.failed:
        status = store.arrays["status"][:]
        bad = np.flatnonzero(status == STATUS_FAILED)[:10]
        errors = store.arrays["error"]
        failures = [(plan.images.paths[i], str(errors[int(i)])) for i in bad]
    return GenerateSummary(store.location, counts.n_images, counts.done, counts.failed, counts.pending,
                           computed, failed, plan.skipped, seconds, world, failures)


class _ChunkWriter:
    """Writes finished chunks on a thread so compression and I/O overlap the
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
            raise RuntimeError(f"writing to the store failed: {self.error!r}") from self.error

    def put(self, c: int, **arrays: Any) -> None:
        """Queue chunk ``c``'s :meth:`SaliencyStore.write_chunk` arguments."""
        self._check()
        self.queue.put((c, arrays))

    def close(self) -> None:
        """Wait for the queued chunks to be written."""
        self.queue.put(None)
        self.thread.join()
        self._check()


def _device(device: Union[str, torch.device, None]) -> torch.device:
    """The device type a run on ``device`` uses (:meth:`Distributed.start`'s choice
    without its rank index): the precision check needs it before any work."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _default_workers() -> int:
    procs = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cpus // max(1, procs) - 1))
