"""``fastcam.generate(...)``: saliency maps for a whole image collection into one
resumable Zarr store, by one of the executors over the chunk protocol
(:mod:`.protocol`):

* ``local`` (default): one process prepares, computes every pending chunk and finalizes;
* ``torchrun`` (``WORLD_SIZE`` > 1): rank 0 prepares, rank ``r`` of ``W``
  computes pending chunks ``r, r+W, ...``, rank 0 finalizes after a barrier;
* ``shard=(i, N)`` (independent processes: a SLURM array, a Kubernetes indexed
  job): each prepares (safe at once), computes the pending chunks whose id ≡ i
  (mod N) and, with ``steal``, then any chunk still pending; no locks or claims;
* ``ray`` (:mod:`.ray_executor`): CPU tasks decode, one actor per worker computes and commits.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Optional, Union

import torch
from torch import nn

from ..errors import UsageError
from ..models.loading import BUNDLED
from .distributed import Distributed
from .manifest import ImagesSpec, redact
from .protocol import GenerateConfig, Prepared, default_device, finalize, prepare, run_chunks
from .store import SaliencyStore
from .summary import GenerateSummary

#: the executors of ``--executor`` (``--shard`` and ``torchrun`` choose theirs)
EXECUTORS = ("local", "ray")


def generate(images: ImagesSpec, out: Union[str, os.PathLike], method: str = "gradcam", *,
             options: Optional[dict] = None, model: Union[str, nn.Module] = BUNDLED,
             weights: Optional[str] = None, layer: Optional[str] = None,
             target: Union[str, int, os.PathLike, None] = "predicted", batch_size: int = 32,
             workers: Optional[int] = None, size: int = 224, dtype: str = "float16",
             device: Union[str, torch.device, None] = None, normalize: Any = "auto",
             precision: str = "fp32", storage_options: Optional[dict] = None, retry_failed: bool = False,
             fingerprint: str = "stat", preprocess: str = "crop", save: tuple = (),
             shard: Optional[tuple[int, int]] = None, steal: bool = False, executor: str = "local",
             ray_workers: int = 2, image_column: str = "image", id_column: Optional[str] = None,
             label_column: Optional[str] = None, progress: bool = True, verbose: bool = True) -> GenerateSummary:
    """Saliency maps for every image of ``images`` into the Zarr store ``out``.

    Args:
        images: a folder (recursive, local or an fsspec URL), a text file of
            paths or URLs, a sequence of them, WebDataset tar shards
            (``'shards/val-{0000..0009}.tar'``) or a Parquet table
            (``image_column``, ``id_column``, ``label_column``); see
            :mod:`fastcam.generation.manifest`.
        out: the store (a local path or any fsspec URL, with ``storage_options``,
            which are never recorded). An existing store made with the same
            arguments is resumed: its done chunks are skipped. Other arguments
            against it raise :class:`GenerateError`.
        method, options: a name of ``fastcam.METHODS`` and its constructor options.
        model: ``"efficientnet_lite0"`` (bundled, pretrained), ``"torchvision:NAME"``
            or an ``nn.Module``; ``weights``: a state-dict file for it.
        layer: the target layer's dotted name (default: the model's last spatial layer).
        target: ``"predicted"``, a class index, ``"topk:K"`` (K rows per image:
            its K most probable classes), or a file: eval's labels CSV
            (``image,class``) or ``PATH CLASS`` lines, an image repeated for
            several classes. The store holds one row per (image, target).
        batch_size: rows per batch, and per chunk of a new store (an existing
            store keeps its own chunk size).
        workers: DataLoader worker processes reading and decoding (default: the
            CPUs per process minus one, 1 to 8).
        size, dtype: the square input/map size and the maps' dtype (float16|float32).
        device: default ``cuda`` when available (``cuda:LOCAL_RANK`` under torchrun).
        normalize: ``"auto"`` (the model's own ``normalization``, ImageNet mean/std
            otherwise), None, ``(mean, std)``, or another form
            :func:`fastcam.preflight.resolve_normalize` takes.
        precision: how the model runs (:class:`fastcam.engine.Engine`): ``"fp32"``,
            ``"bf16"`` or ``"fp16"``; checked against the device before any work
            and recorded in the store (a resume with another is refused).
        retry_failed: also recompute chunks holding failed images.
        fingerprint: ``"stat"`` (what the listing saw) or ``"sha256"`` (of the
            bytes); a resume recomputes the chunks holding a changed image.
        preprocess: ``"crop"`` (shorter side to size·256/224, centre crop) or
            ``"resize"`` (to size × size), decoded in uint8
            (:mod:`fastcam.generation.decode`); recorded, a resume with another is refused.
        save: ``("low-res",)`` also keeps the maps before upsampling (``low_res``).
        shard, steal: ``(i, N)``: this process computes the pending chunks whose
            id ≡ i (mod N), then, with ``steal``, any still pending.
        executor: ``"local"`` or ``"ray"`` (``ray_workers`` actors).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank calls this with the same
    arguments; each computes a disjoint share of the pending chunks.
    """
    config = GenerateConfig(method=method, options=options, model=model, weights=weights, layer=layer,
                            target=target, batch_size=int(batch_size), size=int(size), dtype=dtype,
                            normalize=normalize, precision=precision, preprocess=preprocess,
                            save=tuple(save or ()), fingerprint=fingerprint, retry_failed=retry_failed,
                            image_column=image_column, id_column=id_column, label_column=label_column)
    config.check(device)
    if workers is not None and int(workers) < 0:
        raise UsageError(f"--workers must be >= 0, got {workers}")
    if executor not in EXECUTORS:
        raise UsageError(f"--executor {executor!r}: choose from {list(EXECUTORS)}")
    if shard is not None:
        i, n = (int(v) for v in shard)
        if n < 1 or not 0 <= i < n:
            raise UsageError(f"--shard {i}/{n}: give i/N with 0 <= i < N")
    out = os.fspath(out)
    common = dict(storage_options=storage_options, workers=workers, progress=progress, verbose=verbose)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return _torchrun(images, out, config, device, **common)
    if executor == "ray":
        from .ray_executor import run_ray

        return run_ray(images, out, config, device, n_workers=int(ray_workers), **common)
    return _independent(images, out, config, device, shard=shard, steal=steal, **common)


def _announce(prepared: Prepared, config: GenerateConfig, out: str, who: str, device) -> None:
    print(f"fastcam generate: {prepared.n_rows} rows, {prepared.n_rows - prepared.skipped} to compute in "
          f"{len(prepared.pending)} chunk(s) of {prepared.chunk_size}, {prepared.skipped} already done; "
          f"{config.method}, precision {config.precision}, {who}, device {device} -> {redact(out)}",
          file=sys.stderr, flush=True)


def _independent(images, out: str, config: GenerateConfig, device, *, shard, steal: bool,
                 storage_options, workers, progress: bool, verbose: bool) -> GenerateSummary:
    """The local executor, and one ``--shard i/N`` process."""
    prepared = prepare(images, out, config, storage_options=storage_options, device=device, verbose=verbose)
    i, n = shard if shard is not None else (0, 1)
    mine = [c for c in prepared.pending if c % n == i]
    who = "1 process" if shard is None else f"shard {i}/{n}" + (" (stealing)" if steal else "")
    if verbose:
        _announce(prepared, config, out, who, default_device(device))
    model = prepared.model.model
    t0 = time.perf_counter()
    counts = run_chunks(out, mine, device, storage_options=storage_options, model=model, workers=workers,
                        progress=progress)
    if steal and n > 1:
        # the others' chunks still pending, from the next shard's on: shards steal from different places
        rest = [c for c in prepared.pending if c % n != i]
        rest.sort(key=lambda c: ((c % n - i) % n, c))
        counts = counts + run_chunks(out, rest, device, storage_options=storage_options, model=model,
                                     workers=workers, progress=progress, progress_desc="generate (stealing)")
    seconds = time.perf_counter() - t0
    summary = finalize(out, storage_options=storage_options, computed=counts.computed,
                       computed_failed=counts.failed, skipped=prepared.skipped, seconds=seconds)
    store = SaliencyStore.attach(out, storage_options)
    summary.own_pending = sum(len(store.chunk_range(c)) for c in mine if not store.chunk_done(c))
    if verbose:
        print(summary.format(), flush=True)
    return summary


def _torchrun(images, out: str, config: GenerateConfig, device, *, storage_options, workers,
              progress: bool, verbose: bool) -> GenerateSummary:
    dist = Distributed.start(device)
    try:
        model = None
        if dist.rank == 0:
            with dist.failures_shared():
                prepared = prepare(images, out, config, storage_options=storage_options, device=dist.device,
                                   verbose=verbose)
            model = prepared.model.model
            dist.broadcast((prepared.pending, prepared.skipped))
            if verbose:
                _announce(prepared, config, out, f"{dist.world} process(es)", dist.device)
            pending, skipped = prepared.pending, prepared.skipped
        else:
            pending, skipped = dist.receive()
            if not isinstance(config.model, str):
                model = config.model
        t0 = time.perf_counter()
        counts = run_chunks(out, pending[dist.rank::dist.world], dist.device, storage_options=storage_options,
                            model=model, workers=workers, progress=progress and dist.rank == 0,
                            progress_desc="generate" if dist.world == 1 else f"generate (rank 0 of {dist.world})")
        dist.barrier()
        seconds = time.perf_counter() - t0
        computed, failed = dist.sum([counts.computed, counts.failed])
        summary = None
        if dist.rank == 0:
            summary = finalize(out, storage_options=storage_options, computed=computed, computed_failed=failed,
                               skipped=skipped, seconds=seconds, world=dist.world)
            if verbose:
                print(summary.format(), flush=True)
        return dist.broadcast(summary)
    finally:
        dist.close()
