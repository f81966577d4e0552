"""One chunk's record, computed: :func:`compute_chunk` (no I/O)."""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
import torch

from ..methods import BaseCAM
from .decode import to_unit_float
from .dataset import ChunkBatch
from .store import STATUS_DONE, STATUS_FAILED


class ChunkResult(NamedTuple):
    """A chunk's arrays as :meth:`SaliencyStore.write_chunk` takes them (less the
    paths), and the per-row values only the table records."""

    maps: np.ndarray           # (n, S, S) float16|float32, NaN where failed
    predicted: np.ndarray      # (n,) int32, -1 where failed
    probability: np.ndarray    # (n,) float32 softmax probability of the predicted class, NaN where failed
    target: np.ndarray         # (n,) int32, -1 where failed
    error: list                # n strings, "" where done
    status: np.ndarray         # (n,) uint8, done or failed
    target_logit: np.ndarray   # (n,) float32 the model's output for the target, NaN where failed
    target_probability: np.ndarray   # (n,) float32 its softmax probability, NaN where failed
    low_res: Optional[np.ndarray]    # (n, h, w) float32 before upsampling (when asked), NaN where failed


def _rank_target(rank: int):
    """The score of a row's rank-``rank`` class (0: the predicted one)."""
    if rank == 0:
        return lambda row: row[row.detach().argmax()]
    return lambda row: row[row.detach().topk(rank + 1).indices[rank]]


def _targets(codes: Optional[np.ndarray], device: torch.device):
    """The explainer's targets for target codes (:mod:`.manifest`): None (all
    predicted), class indices, or per-row callables for other ranks."""
    if codes is None or (codes == -1).all():
        return None
    if (codes >= 0).all():
        return torch.as_tensor(codes, device=device)
    return [(lambda row, c=int(c): row[c]) if c >= 0 else _rank_target(-1 - int(c)) for c in codes]


def compute_chunk(cam: BaseCAM, batch: ChunkBatch, targets: Optional[np.ndarray], *, seed: int, size: int,
                  dtype: torch.dtype, device: torch.device, low_res: Optional[tuple[int, int]] = None
                  ) -> ChunkResult:
    """The maps, predicted classes and their probabilities of the chunk's decoded
    images, and a failed status with the decoding error for the others.

    ``cam``: the explainer; ``targets``: the chunk's target codes (None: all
    predicted; see :mod:`.manifest`); ``seed``: the chunk's index, seeding the
    random generators, so that a chunk's result depends on neither the worker nor
    the run; ``size``/``dtype``: the maps'; ``low_res``: the (h, w) of the maps
    before upsampling, to return them too. The batch's images are uint8 (or
    float in [0, 1]); they become float on ``device``.
    """
    ok = batch.ok.numpy()
    n = len(ok)
    np_dtype = np.float16 if dtype == torch.float16 else np.float32
    result = ChunkResult(maps=np.full((n, size, size), np.nan, dtype=np_dtype),
                         predicted=np.full(n, -1, dtype=np.int32),
                         probability=np.full(n, np.nan, dtype=np.float32),
                         target=np.full(n, -1, dtype=np.int32),
                         error=list(batch.errors),
                         status=np.where(ok, STATUS_DONE, STATUS_FAILED).astype(np.uint8),
                         target_logit=np.full(n, np.nan, dtype=np.float32),
                         target_probability=np.full(n, np.nan, dtype=np.float32),
                         low_res=None if low_res is None else np.full((n, *low_res), np.nan, dtype=np.float32))
    if ok.any():
        x = batch.images.to(device, non_blocking=True)
        if x.dtype == torch.uint8:
            x = to_unit_float(x)
        tg = _targets(None if targets is None else targets[ok], device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            maps = cam(x, tg)
        rec = cam.last
        logits = rec.logits.float()
        probs = logits.softmax(1)
        prob, pred = probs.max(1)
        if rec.targets is not None:
            chosen = rec.targets
        elif targets is None or tg is None:
            chosen = pred
        else:       # callables: the class each row's code names
            codes = torch.as_tensor(targets[ok], device=logits.device)
            order = logits.argsort(1, descending=True)
            ranks = (-1 - codes).clamp(min=0)
            chosen = torch.where(codes >= 0, codes, order.gather(1, ranks[:, None])[:, 0])
            chosen = torch.where(codes == -1, pred, chosen)
        result.maps[ok] = maps.to(dtype).cpu().numpy()
        result.predicted[ok] = pred.cpu().numpy()
        result.probability[ok] = prob.cpu().numpy()
        result.target[ok] = chosen.cpu().numpy()
        result.target_logit[ok] = logits.gather(1, chosen[:, None])[:, 0].cpu().numpy()
        result.target_probability[ok] = probs.gather(1, chosen[:, None])[:, 0].cpu().numpy()
        if low_res is not None:
            result.low_res[ok] = rec.low_res[0].float().cpu().numpy()
    return result
