"""What every metric shares: checking (model, x, maps, targets) and computing
class probabilities on the clean images."""
from __future__ import annotations

from typing import Union

import torch
from torch import Tensor, nn

from ..engine import Engine, engine_for
from ..inputs import Normalize, check_images, normalizer
from ..targets import TargetSpec, resolve_targets


def check_maps(x: Tensor, maps: Tensor) -> Tensor:
    check_images(x)
    if not isinstance(maps, Tensor) or maps.dim() != 3 or maps.shape[0] != x.shape[0]:
        raise ValueError(f"maps must be (B,H,W) with B = {x.shape[0]}, got "
                         f"{tuple(getattr(maps, 'shape', ()))}")
    if maps.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"maps {tuple(maps.shape[-2:])} must have the images' size "
                         f"{tuple(x.shape[-2:])} (upsample them first)")
    if not bool(torch.isfinite(maps).all()):
        raise ValueError("maps contain NaN or infinite values")
    return maps.to(device=x.device, dtype=x.dtype)


def clean_probabilities(model: Union[nn.Module, Engine], x: Tensor, targets: TargetSpec, normalize: Normalize,
                        batch_size: int) -> tuple[Tensor, Tensor]:
    """(p, classes): softmax probability of the target class on each clean image,
    and the resolved class indices (None targets -> the predicted class)."""
    norm, engine = normalizer(normalize, x), engine_for(model)
    with torch.inference_mode():
        logits = torch.cat([engine.forward(norm(x[i:i + batch_size]))
                            for i in range(0, len(x), batch_size)])
        resolved = resolve_targets(targets, logits)
        if resolved.indices is None:
            raise ValueError("metrics need class-index targets (None, an int or B ints)")
        p = logits.softmax(1).gather(1, resolved.indices[:, None])[:, 0]
    return p, resolved.indices


def masked_probabilities(model: Union[nn.Module, Engine], x: Tensor, masks: Tensor, classes: Tensor,
                         normalize: Normalize, batch_size: int) -> Tensor:
    """Softmax probability of ``classes`` on ``x ⊙ masks`` (masks (B,H,W) at full
    resolution, multiplying the pixel-space image when normalize is given)."""
    norm, engine = normalizer(normalize, x), engine_for(model)
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            xm = norm(x[i:i + batch_size] * masks[i:i + batch_size, None])
            out.append(engine.forward(xm).softmax(1).gather(1, classes[i:i + batch_size, None])[:, 0])
    return torch.cat(out)
