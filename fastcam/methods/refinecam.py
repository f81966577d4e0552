"""Refine-CAM (2025, arXiv 2605.14641): the product of a base CAM's maps at several layers."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..engine import Precision
from ..inputs import Normalize
from ..network.layers import LayerSpec
from . import torchcam_numerics as tc
from .base import BaseCAM, CallContext
from .finercam import base_instance, layer_maps
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

    Modes (keyword ``mode``):
      - ``"pytorch-grad-cam"`` (default; its ``refine_cam.py``): each layer's map is
        the base method's ``minmax(up(ReLU(Σ_k w_k A_k)))`` at the input size, the
        product is scaled by ``(m − min)/(1e-7 + max − min)``. (Its loop that
        was meant to clip and rescale each map assigns to a loop variable and has
        no effect, so it is not reproduced.)
      - ``"torchcam"`` (TorchCAM 0.5.0's ``RefineCAM``): each layer's map
        ``normalize(ReLU(Σ_k w_k A_k))`` (TorchCAM's normalisation, the base in
        its TorchCAM numerics where it has them) is resized bilinearly to the
        largest layer's resolution, the product normalised again
        (``last.extra["refined"]``, (B, h, w): TorchCAM's output) and upsampled
        to the input size. TorchCAM requires two target layers or more; so does
        this mode.

    Args:
        target_layers: the layers (one or more; two or more with ``"torchcam"``),
            required.
        base_method: a native gradient method class.
        **base_options: further keywords for ``base_method``.
    """

    def __init__(self, model: nn.Module, target_layers: LayerSpec, *,
                 base_method: type = GradCAMPlusPlus, mode: tc.Mode = "pytorch-grad-cam",
                 normalize: Normalize = None, precision: Precision = "fp32",
                 compile: bool = False, **base_options: Any):
        if target_layers is None:
            raise ValueError("RefineCAM needs its target layers, e.g. "
                             "[model.layer2, model.layer3, model.layer4]")
        super().__init__(model, target_layers, normalize=normalize, precision=precision,
                         compile=compile)
        self.mode = tc.check_mode(mode)
        if not self.target_layers or (mode == "torchcam" and len(self.target_layers) < 2):
            raise ValueError("RefineCAM needs at least "
                             f"{'two target layers' if mode == 'torchcam' else 'one target layer'}")
        self.base = base_instance("RefineCAM", base_method, model, self.target_layers, mode,
                                  dict(normalize=normalize, precision=precision, compile=compile,
                                       **base_options))

    def maps(self, ctx: CallContext) -> Tensor:
        sums = layer_maps(self.base, ctx)
        with torch.no_grad():
            if self.mode == "torchcam":
                shape = tuple(max(s) for s in zip(*[tuple(m.shape[-2:]) for m in ctx.low_res]))
                refined = torch.stack([tc.upsample(tc.normalize(m), shape)
                                       for m in ctx.low_res]).prod(dim=0)
                refined = tc.normalize(refined)
                ctx.extra["refined"] = refined
                return tc.upsample(refined, ctx.size)
            if self.base.elementwise():
                per_layer = [self.base.combine(s[:, None], torch.ones_like(s[:, :1, 0]), ctx.size)
                             for s in sums]
            else:
                per_layer = [self.base.combine(A.detach().float(), w, ctx.size)
                             for A, w in zip(ctx.activations, ctx.weights, strict=True)]
            return _scale(torch.stack(per_layer).prod(dim=0))
