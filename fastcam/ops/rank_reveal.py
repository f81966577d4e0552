"""Perturbed copies revealing pixels in saliency order (RISE insertion and
deletion), built in one fused pass and normalised for the model. Inference only."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..kernels import reference as _reference
from ._dispatch import kernel_for
from ._inputs import as_index, as_kernel_input, check_per_channel
from ._inputs import check_index as _check_index


@torch.library.custom_op("fastcam::rank_reveal", mutates_args=())
def _rank_reveal(rank: Tensor, counts: Tensor, index: Tensor, src: Optional[Tensor],
                 dst: Optional[Tensor], mean: Optional[Tensor], std: Optional[Tensor]) -> Tensor:
    ref = src if src is not None else dst
    fn = kernel_for("rank_reveal", ref.device)
    if fn is None:
        return _reference.rank_reveal(rank, counts, index, src, dst, mean, std).contiguous()
    inv_std = None if std is None else (1.0 / std).contiguous()
    return fn(rank, counts, index, src, dst, mean, inv_std)


@_rank_reveal.register_fake
def _(rank, counts, index, src, dst, mean, std):
    ref = src if src is not None else dst
    return ref.new_empty(index.shape[0], *ref.shape[1:])


def rank_reveal(rank: Tensor, counts: Tensor, index: Tensor, src: Tensor | None,
                dst: Tensor | None, *, mean: Tensor | None = None,
                std: Tensor | None = None, check_index: bool = True) -> Tensor:
    """``out[j] = norm(where(rank[i] < counts[j], src[i], dst[i]))``, i = index[j].

    rank: (B, H·W) position of each pixel in the reveal order (0 first);
    counts, index: (n,); src/dst: (B,C,H,W) or None for zeros (deletion reveals
    zeros into x: src=None, dst=x; insertion reveals x into a blurred copy:
    src=x, dst=blurred); mean, std: (C,) or None. Returns (n,C,H,W).
    ``check_index``: check that index lies in [0, B) (a ValueError otherwise),
    one device sync per call; a caller building many chunks checks its whole
    index once (:func:`fastcam.ops.check_index`) and passes False (an index out
    of range is then an out-of-bounds read)."""
    ref = src if src is not None else dst
    if ref is None:
        raise ValueError("src and dst cannot both be None")
    if src is not None and dst is not None and src.shape != dst.shape:
        raise ValueError(f"src {tuple(src.shape)} and dst {tuple(dst.shape)} differ")
    B, C, H, W = ref.shape
    if rank.shape != (B, H * W):
        raise ValueError(f"rank must be (B, H*W) = {(B, H * W)}, got {tuple(rank.shape)}")
    if counts.shape != index.shape or index.dim() != 1:
        raise ValueError("counts and index must be 1-D of the same length")
    if check_index:
        _check_index(index, B)
    check_per_channel(C, mean, std)
    return _rank_reveal(as_index(rank, ref), as_index(counts, ref), as_index(index, ref),
                        as_kernel_input(src, ref), as_kernel_input(dst, ref),
                        as_kernel_input(mean, ref), as_kernel_input(std, ref))
