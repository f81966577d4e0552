"""From channel weights to maps the pytorch-grad-cam way, and test-time augmentation.

pytorch-grad-cam, per target layer: ``cam = Σ_k w_k A_k`` (or the first
principal component of ``w_k A_k`` with ``eigen_smooth``), ReLU, then
``scale_cam_image``: min-max with ``1e-7`` in the denominator at the layer's
resolution, then OpenCV bilinear resizing to the input size. Layers are
averaged and scaled once more. For one layer this is ``minmax(up(ReLU(cam)))``
up to the 1e-7 terms (min-max is affine and bilinear resizing linear), which is
fastcam's fused :func:`~fastcam.ops.cam_combine`; several layers take the
explicit path so that each layer's weight in the mean is the same as there.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...inputs import at_least_fp32
from ...ops import cam_combine
from ...methods.base import channel_sum
from ...methods.projection import principal_projection

#: pytorch-grad-cam's default test-time augmentation (ttach):
#: horizontal flip in {no, yes} × multiply by {0.9, 1, 1.1}, in ttach's order
FLIPS = (False, True)
FACTORS = (0.9, 1.0, 1.1)
_EPS = 1e-7     # scale_cam_image's


def _scale(maps: Tensor) -> Tensor:
    """pytorch-grad-cam's scale_cam_image without resizing: (m − min)/(1e-7 + max − min)."""
    shifted = maps - maps.amin(dim=(-2, -1), keepdim=True)
    return shifted / (_EPS + shifted.amax(dim=(-2, -1), keepdim=True))


def combine_layers(activations: Sequence[Tensor], weights: Sequence[Tensor],
                   size: tuple[int, int], eigen_smooth: bool = False) -> Tensor:
    """Maps (B, H, W) in [0, 1] from per-layer activations (B,K,h,w) and weights (B,K).
    Half-precision activations (a bf16/fp16 engine's, or a half model's) are
    combined in float32, as fastcam's methods combine them."""
    pairs = []
    for A, w in zip(activations, weights, strict=True):
        A = at_least_fp32(A.detach())
        w = w.detach().to(A.dtype)
        if eigen_smooth:
            low = principal_projection(w[:, :, None, None] * A)[:, None]    # (B,1,h,w)
            pairs.append((low, torch.ones(A.shape[0], 1, dtype=A.dtype, device=A.device)))
        else:
            pairs.append((A, w))
    with torch.no_grad():
        if len(pairs) == 1:
            return cam_combine(*pairs[0], size)
        per_layer = []
        for A, w in pairs:
            low = torch.relu(channel_sum(A, w))
            per_layer.append(F.interpolate(_scale(low)[:, None], size=size, mode="bilinear",
                                           align_corners=False)[:, 0])
        return _scale(torch.stack(per_layer).mean(0))


def augmented_batch(x: Tensor) -> Tensor:
    """All augmentations of the batch stacked: (len(FLIPS)·len(FACTORS)·B, C, H, W)."""
    return torch.cat([(x.flip(-1) if flip else x) * factor for flip in FLIPS for factor in FACTORS])


def deaugment_mean(maps: Tensor, batch: int) -> Tensor:
    """Undo the flips of :func:`augmented_batch`'s maps and average: (B, H, W)."""
    maps = maps.reshape(len(FLIPS), len(FACTORS), batch, *maps.shape[1:])
    maps = torch.stack([m.flip(-1) if flip else m for m, flip in zip(maps, FLIPS)])
    return maps.mean(dim=(0, 1))


def identity_rows(batch: int) -> slice:
    """Where the un-augmented copy (no flip, factor 1) sits in the stacked batch."""
    i = FLIPS.index(False) * len(FACTORS) + FACTORS.index(1.0)
    return slice(i * batch, (i + 1) * batch)


def augment_one_by_one(run: Callable[[Tensor], tuple[Tensor, Tensor]], x: Tensor
                       ) -> tuple[Tensor, Tensor]:
    """:func:`augmented_batch` → ``run`` → stack, one augmentation at a time
    (the memory-bounded path); returns (maps, outputs) stacked as one batch would."""
    maps, outputs = [], []
    for flip in FLIPS:
        for factor in FACTORS:
            m, o = run((x.flip(-1) if flip else x) * factor)
            maps.append(m)
            outputs.append(o)
    return torch.cat(maps), torch.cat(outputs)
