"""Channel ablation for Ablation-CAM: which channels of an image are ablated,
with which value, and the ablated activations streamed chunk by chunk.

Ablating channel k of an image replaces the whole map ``A_k`` by one value
(the method's :meth:`~fastcam.methods.ablationcam.AblationCAM.ablation_values`:
0 in the paper; pytorch-grad-cam's values are in :mod:`fastcam.compat.numerics`).

``ratio_channels_to_ablate < 1`` is pytorch-grad-cam's experimental shortcut:
:func:`channels_to_ablate` keeps its selection rule and its bookkeeping.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: pytorch-grad-cam's threshold of its objectiveness mask
MASK_THRESHOLD = 0.01


def objectiveness_mask(A: Tensor, threshold: float = MASK_THRESHOLD) -> Tensor:
    """(B, K, h, w) -> (B, h, w) bool: pytorch-grad-cam's ``objectiveness_mask_from_svd``
    batched: ``|p|`` of the first principal component projection of the centred
    positions (the sign of the SVD does not matter after ``abs``), min-max scaled,
    ``> threshold``. NaNs count as 0, as there."""
    B, K, h, w = A.shape
    X = A.float().reshape(B, K, h * w).transpose(1, 2)
    X = torch.nan_to_num(X, nan=0.0)
    X = X - X.mean(dim=1, keepdim=True)
    _, _, Vh = torch.linalg.svd(X, full_matrices=False)
    p = torch.einsum("bnk,bk->bn", X, Vh[:, 0, :]).abs()
    p = p - p.amin(dim=1, keepdim=True)
    p = p / p.amax(dim=1, keepdim=True)        # 0/0 -> NaN -> False, as there
    return (p > threshold).reshape(B, h, w)


def channels_to_ablate(A: Tensor, ratio: float) -> list[Tensor]:
    """Per image, the channel list pytorch-grad-cam ablates, in its order.

    ``ratio == 1``: all channels 0..K−1. Otherwise each channel gets the score
    ``Σ mask·n_k / Σ n_k`` with ``n_k = minmax(|A_k|)`` (a constant channel's
    score is NaN, which sorts last) and the list
    is the ``int(K·ratio)`` highest scores (highest first) followed by the
    ``int(K·ratio)`` lowest (lowest first): for ratio > 0.5 the two overlap."""
    B, K = A.shape[:2]
    if ratio == 1.0:
        return [torch.arange(K, device=A.device)] * B
    mask = objectiveness_mask(A).to(torch.float32)
    n = A.float().abs().flatten(2)
    n = n - n.amin(dim=2, keepdim=True)
    n = n / n.amax(dim=2, keepdim=True)
    scores = (mask.flatten(1)[:, None, :] * n).sum(2) / n.sum(2)
    # NumPy's argsort, as there: channels with equal scores (1.0 or NaN are common)
    # come out in its (unstable) order, which decides who is in at the cut
    order = [torch.from_numpy(np.argsort(row)).to(A.device) for row in scores.cpu().numpy()]
    m = int(K * ratio)
    return [torch.cat([o.flip(0)[:m], o[:m]]) for o in order]


def effective_ablations(listed: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    """(channels, positions): the channels whose ablated score pytorch-grad-cam
    actually uses, and their position in the forward batch of ``chunk`` copies.

    Its ``assemble_ablation_scores`` walks the sorted list against 0..K−1: a
    channel listed twice (ratio > 0.5) stops the walk, so every channel above
    the first repeated one keeps the original score (weight 0). The list is
    sorted by NumPy's argsort, as there, so a repeated channel's score comes from
    the listing it picks (they differ only when the ablation value depends on
    the position)."""
    pos = torch.arange(listed.numel(), device=listed.device) % chunk
    if listed.numel() == 0:
        return listed, pos
    perm = torch.from_numpy(np.argsort(listed.cpu().numpy())).to(listed.device)
    s = listed[perm]
    dup = (s[1:] == s[:-1]).nonzero()
    if dup.numel():
        stop = int(dup[0, 0]) + 1
        s, perm = s[:stop], perm[:stop]
    return s, pos[perm]


def ablated_copies(A: Tensor, image: Tensor, channel: Tensor, value: Tensor) -> Tensor:
    """Rows ``A[image[j]]`` with channel ``channel[j]`` set to ``value[j]`` (n, K, h, w).
    Fastest from a contiguous A (then no per-chunk layout copy)."""
    # A[image] and one put into the (n·K, h·w) view: on CPU, index_select and a
    # two-index put are each ~10× slower for these shapes
    out = A[image].contiguous()             # a new tensor: A is left as it is
    n, K = out.shape[:2]
    rows = torch.arange(n, device=A.device) * K + channel
    out.view(n * K, -1)[rows] = value.to(A.dtype)[:, None]
    return out
