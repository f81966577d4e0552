"""Refine-CAM (2025, arXiv 2605.14641): the product of a base CAM's maps at several layers."""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..network.layers import LayerSpec
from .base import BaseCAM, CallContext
from .finercam import check_base_method, layer_maps, split_options
from .gradcam_plusplus import GradCAMPlusPlus

_EPS = 1e-7     # pytorch-grad-cam's scale_cam_image


def _scale(t: Tensor) -> Tensor:
    shifted = t - t.amin(dim=(-2, -1), keepdim=True)
    return shifted / (_EPS + shifted.amax(dim=(-2, -1), keepdim=True))


class RefineCAM(BaseCAM):
    """Refine-CAM: the base method's map (Grad-CAM++ by default) at each target
    layer, scaled to [0, 1], multiplied element-wise across layers and scaled
    again: early layers' detail, denoised by the deeper layers' localisation.
    One forward and one backward serve every layer (pytorch-grad-cam runs the
    base method once per layer; the gradients are the same).

    As pytorch-grad-cam's ``refine_cam.py`` (the reference code): each layer's map
    is the base method's ``minmax(up(ReLU(Σ_k w_k A_k)))`` at the input size, the
    product is scaled by ``(m − min)/(1e-7 + max − min)``. (Its loop that was
    meant to clip and rescale each map assigns to a loop variable and has no
    effect, so it is not reproduced.) TorchCAM 0.5.0's ``RefineCAM``:
    :class:`fastcam.compat.numerics.TorchCAMRefineCAM`.

    Args:
        target_layers: the layers (one or more), required.
        base_method: a native gradient method class.
        **base_options: further keywords for ``base_method`` (the common options
            ``normalize``, ``precision``, ``compile`` go to it too).
    """

    #: the fewest target layers
    min_layers: ClassVar[int] = 1

    def __init__(self, model: nn.Module, target_layers: LayerSpec, *,
                 base_method: type = GradCAMPlusPlus, **base_options: Any):
        if target_layers is None:
            raise ValueError("RefineCAM needs its target layers, e.g. "
                             "[model.layer2, model.layer3, model.layer4]")
        common, base_options = split_options(base_options)
        super().__init__(model, target_layers, **common)
        if len(self.target_layers) < self.min_layers:
            raise ValueError("RefineCAM needs at least "
                             f"{'two target layers' if self.min_layers == 2 else 'one target layer'}")
        self.base = self.base_class(check_base_method("RefineCAM", base_method))(
            model, self.target_layers, **common, **base_options)
        # the base method only weights this explainer's call context: it runs no pass
        # of its own, and shares this engine rather than holding a second one
        self.base.engine = self.engine

    def base_class(self, base_method: type) -> type:
        """The class the base method is built from (the given one)."""
        return base_method

    def maps(self, ctx: CallContext) -> Tensor:
        sums = layer_maps(self.base, ctx)
        with torch.no_grad():
            if self.base.elementwise():
                per_layer = [self.base.combine(s[:, None], torch.ones_like(s[:, :1, 0]), ctx.size)
                             for s in sums]
            else:
                per_layer = [self.base.combine(A.detach().float(), w, ctx.size)
                             for A, w in zip(ctx.activations, ctx.weights, strict=True)]
            return _scale(torch.stack(per_layer).prod(dim=0))
