"""Perturbed copies of images from low-resolution maps, built in one fused pass
(Score-CAM's ``X ∘ H_k`` and blends with a baseline), already normalised for the
model. Inference only: no gradient."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ..kernels import reference as _reference
from ._dispatch import kernel_for
from ._inputs import as_index, as_kernel_input, check_per_channel
from ._inputs import check_index as _check_index


@torch.library.custom_op("fastcam::mask_blend", mutates_args=())
def _mask_blend(x: Tensor, maps: Tensor, index: Tensor, baseline: Optional[Tensor],
                mean: Optional[Tensor], std: Optional[Tensor], eps: float,
                align_corners: bool) -> Tensor:
    fn = kernel_for("mask_blend", x.device)
    if fn is None:
        return _reference.mask_blend(x, maps, index, baseline, mean, std, eps, align_corners)
    inv_std = None if std is None else (1.0 / std).contiguous()
    return fn(x, maps, index, baseline, mean, inv_std, eps, align_corners)


@_mask_blend.register_fake
def _(x, maps, index, baseline, mean, std, eps, align_corners):
    return x.new_empty(index.shape[0], *x.shape[1:])


def mask_blend(x: Tensor, maps: Tensor, index: Tensor | None = None, *,
               baseline: Tensor | None = None, mean: Tensor | None = None,
               std: Tensor | None = None, eps: float = 0.0,
               align_corners: bool = False, check_index: bool = True) -> Tensor:
    """``out[j] = norm(x[i] ⊙ m_j + baseline[i] ⊙ (1 − m_j))`` with i = index[j] and
    ``m_j = minmax(up(maps[j]))`` (bilinear to x's size; ``eps`` is added to the
    min-max denominator, pytorch-grad-cam's Score-CAM uses 1e-8; a constant map
    masks everything). ``norm`` is ``(v − mean)/std`` per channel when given.

    Args:
        x: images (B,C,H,W). maps: (n,h,w). index: (n,) image of each map
            (default: all maps belong to image 0, which needs B == 1).
        baseline: (B,C,H,W) or None (black). mean, std: (C,) or None.
        check_index: check that index lies in [0, B) (a ValueError otherwise),
            which reads it back to the host: one device sync per call. A caller
            building many chunks checks its whole index once with
            :func:`fastcam.ops.check_index` and passes False; an index out of
            range is then undefined behaviour (an out-of-bounds read).
    Returns: (n,C,H,W), the chunk of model inputs, in x's dtype if it is float32
    or float64, else float32.
    """
    if x.dim() != 4 or maps.dim() != 3:
        raise ValueError(f"x must be (B,C,H,W) and maps (n,h,w); got {tuple(x.shape)}, "
                         f"{tuple(maps.shape)}")
    if index is None:
        if x.shape[0] != 1:
            raise ValueError("index is required when x holds more than one image")
        index = torch.zeros(maps.shape[0], dtype=torch.long, device=x.device)
    if index.shape != (maps.shape[0],):
        raise ValueError(f"index must have one entry per map ({maps.shape[0]}), got {tuple(index.shape)}")
    if check_index:
        _check_index(index, x.shape[0])
    if baseline is not None and baseline.shape != x.shape:
        raise ValueError(f"baseline {tuple(baseline.shape)} must match x {tuple(x.shape)}")
    n, C, (H, W), (h, w) = maps.shape[0], x.shape[1], x.shape[2:], maps.shape[1:]
    if n and C and H * W and not h * w:
        raise ValueError(f"maps of size {(h, w)} cannot be upsampled to {(H, W)}")
    check_per_channel(C, mean, std)
    return _mask_blend(as_kernel_input(x, x), as_kernel_input(maps, x), as_index(index, x),
                       as_kernel_input(baseline, x), as_kernel_input(mean, x),
                       as_kernel_input(std, x), float(eps), bool(align_corners))
