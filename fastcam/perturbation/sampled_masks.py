"""Score-CAM copies with several samples per mask (SS-CAM's noisy masks,
IS-CAM's scaled masks), streamed chunk by chunk through the model.

Unlike :func:`fastcam.perturbation.masked_scores.masked_scores`, whose fused op
min-max scales each mask after upsampling, these copies use the upsampled map
as it is (``up(maps_j)``, maps already scaled by the caller at their own
resolution, as TorchCAM does), plus an additive noise and a per-sample factor:

    copy(j, s) = norm(scale_s · (x[index_j] ⊙ (up(maps_j) + noise(j, s))))

Memory is bounded by ``chunk_size`` copies: the masks, their noise and the
copies of one chunk are built when the model is about to run them.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..engine import Engine, ScoreFn, engine_for
from ..inputs import Normalize
from ..ops import check_index
from ..progress import counted
from .masked_scores import _norm_tensors

#: noise(rows, samples) -> (n, H, W) additive mask noise of the copies (rows: map
#: index j of each copy, samples: its sample number s)
MaskNoise = Callable[[Tensor, Tensor], Tensor]


def sampled_mask_scores(model: nn.Module | Engine, x: Tensor, maps: Tensor, index: Tensor,
                        samples: int, score_fn: ScoreFn, *, scale: Optional[Tensor] = None,
                        noise: Optional[MaskNoise] = None, chunk_size: int = 32,
                        normalize: Normalize = None) -> Tensor:
    """Scores (m, samples) of the model on ``copy(j, s)`` (see the module docstring)
    for the m maps (m, h, w) of images ``index`` (m,) and ``s < samples``;
    ``scale`` (samples,) or None (1). Copies are ordered map-major (j, then s)."""
    if maps.dim() != 3 or index.shape != (maps.shape[0],):
        raise ValueError(f"maps must be (m,h,w) with one index per map; got {tuple(maps.shape)}, "
                         f"{tuple(index.shape)}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    mean, std = _norm_tensors(normalize, x)
    index = check_index(index.to(x.device, torch.long), x.shape[0])
    m, size = maps.shape[0], tuple(x.shape[-2:])
    image = index.repeat_interleave(samples)
    work = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype

    def build(a: int, b: int) -> Tensor:
        j = torch.arange(a, b, device=x.device)
        row, s = j // samples, j % samples
        mask = F.interpolate(maps[row, None].to(work), size=size, mode="bilinear",
                             align_corners=False)
        if noise is not None:
            mask = mask + noise(row, s)[:, None].to(work)
        copies = mask * x[image[a:b]].to(work)
        if scale is not None:
            copies = scale.to(work)[s][:, None, None, None] * copies
        if mean is not None:
            copies = (copies - mean[:, None, None]) / std[:, None, None]
        return copies.to(x.dtype)

    return engine_for(model).stream_scores(m * samples, build, image, counted(score_fn, m * samples),
                                           chunk_size).view(m, samples)
