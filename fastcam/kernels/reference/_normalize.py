"""The model's input normalisation, shared by the perturbation ops' definitions."""
from __future__ import annotations

from torch import Tensor


def normalize(v: Tensor, mean: Tensor | None, std: Tensor | None) -> Tensor:
    """``(v − mean)/std`` per channel of (n,C,H,W) ``v``; ``v`` itself without mean."""
    if mean is None:
        return v
    return (v - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
