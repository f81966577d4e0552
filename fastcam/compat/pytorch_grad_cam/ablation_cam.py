"""Ablation-CAM with pytorch-grad-cam's interface (``pytorch_grad_cam.AblationCAM``)."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from torch import nn

from ...engine import Precision
from ..numerics import PytorchGradCAMAblationCAM as _Method
from .ablation_layer import AblationLayer, AblationLayerVit
from .base_cam import BaseCAM, ReshapeTransform, method_option

__all__ = ["AblationCAM"]


def _is_layer(layer: Any, ours: type) -> bool:
    """``layer`` is exactly ``ours`` or grad-cam's class of that name (not a
    subclass: the variants ablate other layouts)."""
    t = type(layer)
    return t is ours or (t.__name__ == ours.__name__
                         and t.__module__ == "pytorch_grad_cam.ablation_layer")


class AblationCAM(BaseCAM):
    """Ablation-CAM (Desai & Ramaswamy, WACV 2020) with pytorch-grad-cam's numerics:
    ``w_k = (y_c − y_c^k)/y_c`` with channel k ablated to 0 when the image's
    activation has minimum 0, else to ``min − (i+1)·1e7`` at batch position i (its
    ``AblationLayer``), ``ratio_channels_to_ablate`` with its selection rule.

    Unlike pytorch-grad-cam, which swaps an ``AblationLayer`` into the model and
    re-runs the whole model on ``batch_size`` copies of the input per chunk, one
    image at a time, fastcam splits the model at the target layer and runs only
    the tail on the ablated activations, the whole batch's chunks together, and
    on a global-average-pool + linear head computes every ablated score in closed
    form (no tail forward); scores stay on the device; no progress bar. The
    model is never modified.

    Token models: ``ablation_layer=AblationLayerVit()`` (ours or grad-cam's) with a
    ``reshape_transform`` (required with it, and only with it): the layer's
    output is tokens with the channel last, channel k of the reshaped activation
    is ablated in token space and the whole model re-runs from the input with
    the layer's output replaced, ``batch_size`` copies at a time, as there (a
    temporary forward hook; the model is not split). The Faster R-CNN variant is
    pytorch-grad-cam's (``pytorch_grad_cam.AblationCAM``).
    Keyword options of :class:`fastcam.methods.ablationcam.AblationCAM`
    (``fast_path=``, ``normalize=``) pass through.
    """

    method_class = _Method
    takes_reshape_transform = True

    def __init__(self, model: nn.Module, target_layers: Sequence[Union[nn.Module, str]],
                 reshape_transform: ReshapeTransform = None,
                 ablation_layer: Optional[nn.Module] = None, batch_size: int = 32,
                 ratio_channels_to_ablate: float = 1.0, *, precision: Precision = "fp32",
                 **options: Any) -> None:
        if ablation_layer is None:
            ablation_layer = AblationLayer()
        vit = _is_layer(ablation_layer, AblationLayerVit)
        if not (vit or _is_layer(ablation_layer, AblationLayer)):
            raise ValueError(f"fastcam's AblationCAM ablates CNN channels (AblationLayer) or "
                             f"ViT token channels (AblationLayerVit); "
                             f"{type(ablation_layer).__name__} needs pytorch-grad-cam's own "
                             "AblationCAM (pytorch_grad_cam.AblationCAM)")
        if vit and reshape_transform is None:
            raise ValueError("AblationLayerVit ablates token channels: pass a reshape_transform "
                             "that turns the layer's tokens into (B, D, h, w)")
        if not vit and reshape_transform is not None:
            raise ValueError("AblationCAM with AblationLayer splits the model at the target "
                             "layer and cannot take a reshape_transform; for a token model "
                             "pass ablation_layer=AblationLayerVit()")
        super().__init__(model, target_layers, reshape_transform, precision=precision,
                         batch_size=batch_size, ratio_channels_to_ablate=ratio_channels_to_ablate,
                         **options)
        self.ablation_layer = ablation_layer

    batch_size = method_option("batch_size", int, lambda v: v >= 1, ">= 1",
                               "Ablated copies per tail forward (pytorch-grad-cam's ``batch_size``).")
    ratio_channels_to_ablate = method_option(
        "ratio_channels_to_ablate", float, lambda v: 0.0 < v <= 1.0, "in (0, 1]",
        "The share of channels ablated (pytorch-grad-cam's ``ratio_channels_to_ablate``).")
