"""The Ray executor of ``fastcam generate`` (``--executor ray``, ``fastcam[ray]``).

The driver prepares the store (:func:`~.protocol.prepare`), then CPU tasks read
and decode chunks (:class:`~.dataset.ChunkDataset`) while ``n_workers``
actors (one per GPU when the cluster has GPUs, else one per CPU worker) each
hold a :class:`~.protocol.ChunkWorker` that computes and commits them. Nothing
is resumed from Ray's state: an actor that dies is replaced and its chunk
submitted again (commits are idempotent), and a driver that dies is simply
run again, which resumes from the store. Storage options and URL credentials
travel in memory only.

Launch lines: ``fastcam generate ... --executor ray`` on a machine (a local Ray
started for the run) or on a cluster's head node (``RAY_ADDRESS`` set: it
joins that cluster).
"""
from __future__ import annotations

import os
import sys
import time
from collections import deque
from typing import Optional

from ..errors import UsageError
from . import manifest as _manifest
from .protocol import ChunkCounts, ChunkWorker, GenerateConfig, finalize, prepare
from .summary import GenerateSummary


def _ray():
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'fastcam[ray]'") from None
    return ray


def run_ray(images, out: str, config: GenerateConfig, device, *, n_workers: int = 2,
            storage_options: Optional[dict] = None, workers: Optional[int] = None, progress: bool = True,
            verbose: bool = True, num_cpus: Optional[int] = None) -> GenerateSummary:
    """Prepare, compute the pending chunks on ``n_workers`` Ray actors (decoding
    in Ray tasks, at most two chunks ahead per actor), finalize."""
    ray = _ray()
    if n_workers < 1:
        raise UsageError(f"--ray-workers must be >= 1, got {n_workers}")
    prepared = prepare(images, out, config, storage_options=storage_options, device="cpu", verbose=verbose)
    if not prepared.pending:         # resumed from the store: nothing to start
        summary = finalize(out, storage_options=storage_options, skipped=prepared.skipped, world=n_workers)
        if verbose:
            print(summary.format(), flush=True)
        return summary
    started = False
    if not ray.is_initialized():
        # the driver's thread count and malloc choice (fastcam.allocator) reach the actors
        env = {k: v for k, v in os.environ.items() if k.startswith("MALLOC_") or k == "FASTCAM_MALLOC"}
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **env}})
        started = True
    try:
        gpus = ray.cluster_resources().get("GPU", 0) if device is None or str(device).startswith("cuda") else 0
        credentials = dict(_manifest._CREDENTIALS)

        # CPU actors and decoding tasks share the CPUs: with fewer than actors + 1,
        # each gets a fraction, so the tasks always find room beside the actors
        share = min(1.0, float(ray.cluster_resources().get("CPU", 1)) / (n_workers + 1))

        @ray.remote(num_cpus=share)
        def decode(out_, c, storage_options_, credentials_):
            _manifest._CREDENTIALS.update(credentials_)
            return _Decoder.get(out_, storage_options_)[c]

        actor_cls = ray.remote(num_cpus=0 if gpus else share, num_gpus=1 if gpus else 0)(_Actor)
        dev = device or ("cuda" if gpus else "cpu")

        def new_actor():
            return actor_cls.remote(out, str(dev), storage_options, credentials)

        actors = [new_actor() for _ in range(n_workers)]
        queue = deque(prepared.pending)
        running: dict = {}         # object ref -> (actor index, its handle, chunk)
        idle = deque(a for _ in range(2) for a in range(n_workers))   # two chunks in flight per actor
        counts = ChunkCounts()
        t0 = time.perf_counter()
        if verbose:
            print(f"fastcam generate: {len(prepared.pending)} chunk(s) on {n_workers} Ray actor(s)",
                  file=sys.stderr, flush=True)
        while queue or running:
            while queue and idle:
                a = idle.popleft()
                c = queue.popleft()
                batch = decode.remote(out, c, storage_options, credentials)
                running[actors[a].commit.remote(batch)] = (a, actors[a], c)
            done, _ = ray.wait(list(running), num_returns=1)
            a, handle, c = running.pop(done[0])
            try:
                computed, failed, chunks = ray.get(done[0])
                counts = counts + ChunkCounts(computed, failed, chunks)
            except ray.exceptions.RayActorError:
                if actors[a] is handle:         # the actor died: a new one, and its chunks again
                    actors[a] = new_actor()
                queue.appendleft(c)
            idle.append(a)
        seconds = time.perf_counter() - t0
    finally:
        if started:
            ray.shutdown()
    summary = finalize(out, storage_options=storage_options, computed=counts.computed, computed_failed=counts.failed,
                       skipped=prepared.skipped, seconds=seconds, world=n_workers)
    if verbose:
        print(summary.format(), flush=True)
    return summary


class _Decoder:
    """Per-process cache of a store's dataset (decoding tasks reuse it)."""

    _cache: dict = {}

    @classmethod
    def get(cls, out: str, storage_options: Optional[dict]):
        key = out
        if key not in cls._cache:
            from .dataset import ChunkDataset
            from .protocol import _open_for_work

            store = _open_for_work(out, storage_options)
            meta = store.meta
            cls._cache[key] = ChunkDataset(store.read_manifest(), store.chunk_size, int(meta["size"]),
                                           meta["preprocess"]["geometry"],
                                           image_column=meta.get("image_column", "image"),
                                           storage_options=storage_options,
                                           hash_bytes=store.fingerprint_kind == "sha256")
        return cls._cache[key]


class _Actor:
    """One device's :class:`ChunkWorker`, in a process of its own (Ray starts one
    per actor): glibc's malloc is set for it as for the command's
    (:mod:`fastcam.allocator`)."""

    def __init__(self, out: str, device: str, storage_options: Optional[dict], credentials: dict):
        import torch

        from ..allocator import tune_malloc

        tune_malloc()
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        _manifest._CREDENTIALS.update(credentials)
        self.worker = ChunkWorker(out, device, storage_options=storage_options)

    def pid(self) -> int:
        return os.getpid()

    def commit(self, batch) -> tuple[int, int, int]:
        got = self.worker.commit(batch, wait=True)
        return got.computed, got.failed, got.chunks
