"""One chunk's record, computed: :func:`compute_chunk` (no I/O)."""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import torch

from ..methods import BaseCAM
from .dataset import ChunkBatch
from .store import STATUS_DONE, STATUS_FAILED


class ChunkResult(NamedTuple):
    """A chunk's arrays as :meth:`SaliencyStore.write_chunk` takes them (less the paths)."""

    maps: np.ndarray           # (n, S, S) float16|float32, NaN where failed
    predicted: np.ndarray      # (n,) int32, -1 where failed
    probability: np.ndarray    # (n,) float32, NaN where failed
    target: np.ndarray         # (n,) int32, -1 where failed
    error: list                # n strings, "" where done
    status: np.ndarray         # (n,) uint8, done or failed


def compute_chunk(cam: BaseCAM, batch: ChunkBatch, targets: Optional[np.ndarray], *, seed: int, size: int,
                  dtype: torch.dtype, device: torch.device) -> ChunkResult:
    """The maps, predicted classes and their probabilities of the chunk's decoded
    images, and a failed status with the decoding error for the others.

    ``cam``: the explainer; ``targets``: the chunk's classes (None: predicted);
    ``seed``: the chunk's index, seeding the random generators, so that a chunk's
    result depends on neither the rank nor the run; ``size``/``dtype``: the maps'.
    """
    ok = batch.ok.numpy()
    n = len(ok)
    np_dtype = np.float16 if dtype == torch.float16 else np.float32
    result = ChunkResult(maps=np.full((n, size, size), np.nan, dtype=np_dtype),
                         predicted=np.full(n, -1, dtype=np.int32),
                         probability=np.full(n, np.nan, dtype=np.float32),
                         target=np.full(n, -1, dtype=np.int32),
                         error=list(batch.errors),
                         status=np.where(ok, STATUS_DONE, STATUS_FAILED).astype(np.uint8))
    if ok.any():
        x = batch.images.to(device, non_blocking=True)
        tg = None if targets is None else torch.as_tensor(targets[ok], device=device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            maps = cam(x, tg)
        rec = cam.last
        prob, pred = rec.logits.float().softmax(1).max(1)
        result.maps[ok] = maps.to(dtype).cpu().numpy()
        result.predicted[ok] = pred.cpu().numpy()
        result.probability[ok] = prob.cpu().numpy()
        result.target[ok] = (rec.targets if rec.targets is not None else pred).cpu().numpy()
    return result
