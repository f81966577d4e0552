"""``fastcam.explain``: one call from a model and a batch to maps."""
from __future__ import annotations

from typing import Any, Optional

from torch import Tensor, nn

from .inputs import NormalizeSpec
from .methods import METHODS
from .network.hooks import Transform
from .network.layers import UNSET, LayerSpec, merge_layer_alias
from .targets import TargetSpec


def explain(model: nn.Module, x: Tensor, method: str = "gradcam", target_layers: LayerSpec = None,
            targets: TargetSpec = None, *, normalize: NormalizeSpec = None,
            reshape_transform: Optional[Transform] = None, progress: Optional[bool] = None,
            target_layer: LayerSpec = UNSET, **options: Any) -> Tensor:
    """Explain a batch with one method; returns maps (B, H, W) float32 in [0, 1]
    on x's device.

    ``method`` is one of ``fastcam.METHODS`` (case-insensitive); ``target_layers``
    (None: found by a dry run), ``normalize`` (None, ``(mean, std)`` or a preset
    such as ``"imagenet"``), ``reshape_transform`` (a token output into a grid),
    ``progress`` (a bar for many-pass methods; None: when stderr is a terminal)
    and ``options`` go to the method's constructor; ``x`` (float, or uint8 read as
    0–255 pixels) and ``targets`` (None, an int, B ints, or callables) to its call.
    See :class:`fastcam.methods.BaseCAM` for each. ``target_layer=`` is a
    deprecated alias of ``target_layers`` (it warns)."""
    target_layers = merge_layer_alias(target_layers, target_layer, "fastcam.explain")
    try:
        cls = METHODS[method.lower()]
    except KeyError:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(METHODS)}") from None
    with cls(model, target_layers, normalize=normalize, reshape_transform=reshape_transform,
             progress=progress, **options) as cam:
        return cam(x, targets)
