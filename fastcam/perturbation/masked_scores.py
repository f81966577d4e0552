"""The masked-batch engine: stream chunks of perturbed inputs through a model
and keep one score per copy, on the device.

Score-CAM, every faithfulness metric and insertion/deletion run the model on
many perturbed copies of an input. The copies are built chunk by chunk by a
fused kernel (:mod:`fastcam.ops.mask_blend`, :mod:`fastcam.ops.rank_reveal`),
so memory is bounded by ``chunk_size`` copies, never by their total number,
and no score leaves the device until the caller asks.
"""
from __future__ import annotations

from typing import Callable, Literal, Sequence

import torch
from torch import Tensor, nn

from ..engine import Engine, ScoreFn, engine_for
from ..inputs import Normalize
from ..ops import check_index, mask_blend
from ..ops import rank_reveal
from ..progress import counted

Score = Literal["logit", "probability"]


def class_score(targets: Tensor, score: Score = "logit") -> ScoreFn:
    """score_fn for class indices per image: ``score_fn(logits, image_index)``
    returns each copy's target logit or softmax probability."""
    if score not in ("logit", "probability"):
        raise ValueError(f"score must be 'logit' or 'probability', got {score!r}")

    def fn(logits: Tensor, image: Tensor) -> Tensor:
        values = logits.softmax(dim=1) if score == "probability" else logits
        return values.gather(1, targets[image][:, None])[:, 0]
    return fn


def callable_score(callables: Sequence[Callable[[Tensor], Tensor]]) -> ScoreFn:
    """score_fn applying image i's callable to the logits row of each of its copies."""
    def fn(logits: Tensor, image: Tensor) -> Tensor:
        return torch.stack([torch.as_tensor(callables[int(i)](row)).reshape(())
                            for row, i in zip(logits, image.tolist())]).to(logits.dtype)
    return fn


def _norm_tensors(normalize: Normalize, like: Tensor):
    if normalize is None:
        return None, None
    mean, std = (torch.as_tensor(v, dtype=like.dtype, device=like.device).reshape(-1)
                 for v in normalize)
    C = like.shape[1]
    mean, std = mean.expand(C).contiguous(), std.expand(C).contiguous()
    if bool((std <= 0).any()):
        raise ValueError("normalize: every std must be positive")
    return mean, std


def masked_scores(model: nn.Module | Engine, x: Tensor, maps: Tensor, index: Tensor, score_fn: ScoreFn, *,
                  chunk_size: int = 64, normalize: Normalize = None,
                  baseline: Tensor | None = None, eps: float = 0.0,
                  align_corners: bool = False) -> Tensor:
    """Scores (n,) of the model on ``x[index[j]] ⊙ minmax(up(maps[j]))`` (blended
    with ``baseline`` when given), for every map j, ``chunk_size`` at a time.

    ``normalize=(mean, std)``: x is pixel-space in [0, 1], the mask multiplies it
    and the model sees the normalised copy (masking before normalisation); None:
    the mask multiplies the tensor given. ``score_fn(logits, image_index)`` gives
    each copy's score (see :func:`class_score`)."""
    mean, std = _norm_tensors(normalize, x)
    index = check_index(index.to(x.device, torch.long), x.shape[0])  # once, not per chunk

    def build(a: int, b: int) -> Tensor:
        # the op computes in fp32 for a half-precision x; the model gets x's dtype
        return mask_blend(x, maps[a:b], index[a:b], baseline=baseline, mean=mean, std=std,
                          eps=eps, align_corners=align_corners, check_index=False).to(x.dtype)
    return engine_for(model).stream_scores(maps.shape[0], build, index,
                                           counted(score_fn, maps.shape[0]), chunk_size)


def reveal_scores(model: nn.Module | Engine, rank: Tensor, counts: Tensor, index: Tensor,
                  src: Tensor | None, dst: Tensor | None, score_fn: ScoreFn, *,
                  chunk_size: int = 64, normalize: Normalize = None) -> Tensor:
    """Scores (n,) of the model on ``where(rank[i] < counts[j], src[i], dst[i])``
    (i = index[j]) — insertion/deletion copies — ``chunk_size`` at a time."""
    ref = src if src is not None else dst
    mean, std = _norm_tensors(normalize, ref)
    index = check_index(index.to(ref.device, torch.long), ref.shape[0])  # once, not per chunk
    counts = counts.to(ref.device, torch.long)

    def build(a: int, b: int) -> Tensor:
        return rank_reveal(rank, counts[a:b], index[a:b], src, dst, mean=mean,
                           std=std, check_index=False).to(ref.dtype)
    return engine_for(model).stream_scores(index.shape[0], build, index,
                                           counted(score_fn, index.shape[0]), chunk_size)
