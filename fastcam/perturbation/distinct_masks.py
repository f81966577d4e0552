"""Which of Score-CAM's masked copies are equal, found exactly, so that each
distinct copy is run through the model once.

Two maps of the same image give the same copy ``x ⊙ minmax(up(map))`` when
they are bitwise identical (the kernel computes each copy from its own map
alone). Constant maps are the common case (dead channels: 381–830 of the 1280
channels of the bundled EfficientNet-Lite0 at ``_head_act`` are all zero on the
bundled photos), and different constants can give the same copy too: ``min-max``
of a constant map is 0 everywhere, so the copy is the baseline (black) image. But
bilinear upsampling of a non-zero constant is constant only up to rounding,
and the min-max scaling magnifies that rounding (with ``align_corners=True`` and
+1e-8, pytorch-grad-cam's convention, a 7×7 map of 6.0 upsampled to 224×224
gives a mask with values up to 0.99). So a constant map joins the all-zero
map's class only when the copy the op builds from it is bitwise equal to the
copy it builds from an all-zero map; nothing is merged on approximate equality.
Different non-constant maps whose copies coincide (A and 2A) are not looked for:
they stay in separate classes.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..inputs import Normalize
from ..ops import mask_blend
from .masked_scores import _norm_tensors

_BITS = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


class MaskClasses(NamedTuple):
    """``representatives`` (r,): the index of one map per class of equal copies
    (its first map, in increasing order); ``inverse`` (n,): the class of every map,
    so that ``scores[inverse]`` spreads the r scores back to the n maps."""

    representatives: Tensor
    inverse: Tensor


def _bits(maps: Tensor) -> Tensor:
    """(n, h·w) integer view of the maps' bits (at least int32 wide, so that an
    image index fits beside them)."""
    flat = maps.contiguous().flatten(1)
    bits = flat.view(_BITS[flat.element_size()])
    return bits if bits.element_size() >= 4 else bits.to(torch.int32)


def _first_of_each(labels: Tensor, count: int) -> Tensor:
    """(count,): the smallest position holding each label 0..count-1."""
    n = labels.shape[0]
    first = torch.full((count,), n, dtype=torch.long, device=labels.device)
    return first.scatter_reduce_(0, labels, torch.arange(n, device=labels.device), "amin")


def distinct_masks(x: Tensor, maps: Tensor, index: Tensor, *, chunk_size: int = 64,
                   normalize: Normalize = None, baseline: Tensor | None = None,
                   eps: float = 0.0, align_corners: bool = False) -> MaskClasses:
    """Classes of maps whose copies in :func:`~fastcam.perturbation.masked_scores`
    (same arguments) are equal: maps of the same image ``index[j]`` that are
    bitwise identical, and, per image, every constant map whose copy is bitwise
    equal to an all-zero map's copy (see the module docstring).

    Only the constant maps' copies are built here (to compare them), at most
    ``chunk_size`` copies at a time; everything stays on ``maps``' device."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n = maps.shape[0]
    index = index.to(maps.device, torch.long)
    if n == 0:
        empty = torch.empty(0, dtype=torch.long, device=maps.device)
        return MaskClasses(empty, empty)
    bits = _bits(maps)
    keys = torch.cat([index[:, None].to(bits.dtype), bits], dim=1)
    _, labels = torch.unique(keys, dim=0, return_inverse=True)
    count = int(labels.max()) + 1
    first = _first_of_each(labels, count)

    flat = maps[first].flatten(1)
    constant = (flat.amax(1) == flat.amin(1)).nonzero()[:, 0]       # class ids
    if constant.numel():
        blank = _blank_copies(x, maps[first[constant]], index[first[constant]],
                              chunk_size=chunk_size, normalize=normalize, baseline=baseline,
                              eps=eps, align_corners=align_corners)
        merged = constant[blank]
        if merged.numel() > 1:
            image = index[first[merged]]
            canon = torch.full((x.shape[0],), count, dtype=torch.long, device=maps.device)
            canon.scatter_reduce_(0, image, merged, "amin")
            relabel = torch.arange(count, device=maps.device)
            relabel[merged] = canon[image]
            _, labels = torch.unique(relabel[labels], return_inverse=True)
            count = int(labels.max()) + 1
            first = _first_of_each(labels, count)

    order = first.argsort()
    rank = torch.empty_like(order)
    rank[order] = torch.arange(count, device=maps.device)
    return MaskClasses(first[order], rank[labels])


def _blank_copies(x: Tensor, maps: Tensor, index: Tensor, *, chunk_size: int,
                  normalize: Normalize, baseline: Tensor | None, eps: float,
                  align_corners: bool) -> Tensor:
    """(m,) bool: whether the copy of ``maps[j]`` is bitwise the copy of an all-zero
    map of the same image, built by the op exactly as masked_scores builds it."""
    mean, std = _norm_tensors(normalize, x)
    half = max(1, chunk_size // 2)          # a chunk of copies and as many references
    out = []
    with torch.no_grad():
        for a in range(0, maps.shape[0], half):
            m, i = maps[a:a + half], index[a:a + half]
            got = mask_blend(x, m, i, baseline=baseline, mean=mean, std=std, eps=eps,
                             align_corners=align_corners).to(x.dtype)
            ref = mask_blend(x, torch.zeros_like(m), i, baseline=baseline, mean=mean, std=std,
                             eps=eps, align_corners=align_corners).to(x.dtype)
            out.append((_bits(got) == _bits(ref)).all(dim=1))
    return torch.cat(out)
