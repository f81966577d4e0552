"""``fastcam.explain``: one call from a model and a batch to maps."""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .inputs import Normalize
from .methods import METHODS
from .network.layers import LayerSpec
from .targets import TargetSpec


def explain(model: nn.Module, x: Tensor, method: str = "gradcam", target_layer: LayerSpec = None,
            targets: TargetSpec = None, *, normalize: Normalize = None, **options: Any) -> Tensor:
    """Explain a batch with one method; returns maps (B, H, W) float32 in [0, 1]
    on x's device. ``method`` is one of ``fastcam.METHODS``; ``options`` go to the
    method's constructor. See :class:`fastcam.methods.BaseCAM` for the arguments."""
    try:
        cls = METHODS[method.lower()]
    except KeyError:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(METHODS)}") from None
    with cls(model, target_layer, normalize=normalize, **options) as cam:
        return cam(x, targets)
