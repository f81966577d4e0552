"""FullGrad (Srinivas & Fleuret, NeurIPS 2019)."""
from __future__ import annotations

import warnings
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..inputs import at_least_fp32, check_finite
from ..network.layers import LayerSpec
from .base import BaseCAM, CallContext, CommonOptions, Unpack, upsample

#: pytorch-grad-cam's ``scale_cam_image`` eps
_EPS = 1e-7
#: the layers whose bias enters the map (pytorch-grad-cam: the exact types, with a bias)
_BIAS_TYPES = (nn.Conv2d, nn.BatchNorm2d)


def _scale(t: Tensor) -> Tensor:
    """pytorch-grad-cam's ``scale_cam_image`` of every map: (m − min)/(1e-7 + max − min)."""
    shifted = t - t.amin(dim=(-2, -1), keepdim=True)
    return shifted / (_EPS + shifted.amax(dim=(-2, -1), keepdim=True))


def bias_layers(model: nn.Module) -> list[nn.Module]:
    """Every ``Conv2d`` / ``BatchNorm2d`` of ``model`` (exact types) that has a bias,
    in pytorch-grad-cam's order (``find_layer_predicate_recursive``: pre-order)."""
    found = []

    def visit(module: nn.Module) -> None:
        for child in module._modules.values():
            if child is None:
                continue
            if type(child) in _BIAS_TYPES and child.bias is not None:
                found.append(child)
            visit(child)

    visit(model)
    return found


def layer_bias(layer: nn.Module) -> Tensor:
    """The bias a layer adds to its output (K,): a conv's bias, or a batch norm's
    folded one ``b − μ·γ/√(σ² + eps)`` (the official code's ``tensor_extractor``)."""
    if isinstance(layer, nn.BatchNorm2d):
        if layer.running_mean is None or layer.running_var is None:
            raise ValueError("FullGrad needs batch-norm layers with running statistics "
                             "(track_running_stats=True) to fold their bias")
        return layer.bias - layer.running_mean * layer.weight / torch.sqrt(layer.running_var + layer.eps)
    return layer.bias


class FullGrad(BaseCAM):
    """FullGrad: the map is the sum of the input-gradient term and the bias-gradient
    terms of every layer with a bias — the paper's FullGrad saliency
    ``S = ψ(∇ₓf ⊙ x) + Σ_l Σ_k ψ(∇_{b_l}f ⊙ b_l)_k`` with ψ = abs, per-map scaling
    and resizing, as pytorch-grad-cam 1.5.7 (``fullgrad_cam.py``) computes it:
    with ``s(t) = (t − min)/(1e-7 + max − min)`` per map,

        S = s( Σ_c s(|x ⊙ ∂y/∂x|_c) + Σ_l up( Σ_k s(|b_lk · ∂y/∂z_lk|) ) )

    where ``x`` is the input the model sees, ``z_l`` the output of layer l and
    ``b_l`` its bias (a batch norm's folded bias, as the official code), ``up``
    bilinear (align_corners=False) to the input size. The layers are every
    ``Conv2d`` and ``BatchNorm2d`` that has a bias (exact types, as
    pytorch-grad-cam); ``target_layers`` are ignored with a warning, as there. The
    per-channel terms are summed at each layer's resolution before upsampling
    (upsampling is linear; pytorch-grad-cam upsamples every channel first).
    Cost: one forward, one backward to the input (no parameter gradients).

    ``last.low_res``: per bias layer, ``Σ_k s(|b_k ∂y/∂z_k|)`` (B, h, w);
    ``last.extra["input_term"]``: ``Σ_c s(|x ⊙ ∂y/∂x|_c)`` (B, H, W).

    Raises ``ValueError`` for a model without such layers, or a batch norm
    without running statistics.
    """

    input_gradient: ClassVar[bool] = True

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None,
                 **options: Unpack[CommonOptions]):
        if target_layers is not None and not (isinstance(target_layers, (list, tuple))
                                              and len(target_layers) == 0):
            warnings.warn("FullGrad ignores target_layers: every Conv2d/BatchNorm2d layer with "
                          "a bias is used instead (as pytorch-grad-cam)", stacklevel=2)
        layers = bias_layers(model)
        if not layers:
            raise ValueError("FullGrad needs a model with Conv2d or BatchNorm2d layers that have "
                             f"a bias; {type(model).__name__} has none")
        for layer in layers:
            if isinstance(layer, nn.BatchNorm2d) and (layer.running_mean is None
                                                      or layer.running_var is None):
                raise ValueError("FullGrad needs batch-norm layers with running statistics "
                                 "(track_running_stats=True) to fold their bias")
        super().__init__(model, layers, **options)
        # The input gradient crosses every layer: on a randomly initialised VGG-16 the
        # channels-last and contiguous convolution kernels give input gradients ~1%
        # apart, so the model runs in the memory format it is given (as pytorch-grad-cam).
        self.engine.channels_last = False

    def maps(self, ctx: CallContext) -> Tensor:
        with torch.enable_grad():
            grads = torch.autograd.grad(ctx.scores.sum(), [ctx.x_model, *ctx.activations])
        for g in grads:
            check_finite(g, "FullGrad's gradients")
        with torch.no_grad():
            x = at_least_fp32(ctx.x_model.detach())
            input_term = _scale((at_least_fp32(grads[0]) * x).abs()).sum(dim=1)
            low_res = []
            for layer, g in zip(ctx.layers, grads[1:], strict=True):
                b = at_least_fp32(layer_bias(layer).detach()).to(g.device)
                low_res.append(_scale((b[None, :, None, None] * at_least_fp32(g)).abs()).sum(dim=1))
            total = input_term
            for m in low_res:
                total = total + upsample(m, ctx.size)
            ctx.low_res = low_res
            ctx.extra["input_term"] = input_term
            return _scale(total)
