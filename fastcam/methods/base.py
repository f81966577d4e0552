"""The explainer base class: hooks, targets, batching and the last-call record.

A method only says how to weight the channels of the target layer's activation
(:meth:`BaseCAM.channel_weights`); the base class runs the model once for the
whole batch, keeps everything on the input's device and turns the weights into
maps with the fused :func:`fastcam.ops.cam_combine`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from ..inputs import Normalize, check_images, normalizer
from ..network.hooks import ActivationCapture, Transform
from ..network.layers import LayerSpec, find_spatial_layer, resolve_layers
from ..ops import cam_combine
from ..targets import TargetSpec, Targets, resolve_targets


@dataclass
class CAMRecord:
    """What the last call computed, for research use (all detached, on x's device)."""

    logits: Tensor                      # (B, C) model output on the (normalised) input
    targets: Optional[Tensor]           # (B,) class indices, None for callable targets
    scores: Tensor                      # (B,) the explained target scores
    activations: list[Tensor] = field(default_factory=list)   # per layer (B, K, h, w)
    weights: list[Tensor] = field(default_factory=list)       # per layer (B, K)
    low_res: list[Tensor] = field(default_factory=list)       # per layer (B, h, w) ReLU(Σ w A)
    extra: dict = field(default_factory=dict)                 # method-specific values


class Weighted(NamedTuple):
    """One batch's pass through a method, before the maps are made."""

    activations: list[Tensor]   # per layer (B, K, h, w)
    logits: Tensor              # the model output on the (normalised) input
    targets: Targets
    scores: Tensor              # (B,) the explained target scores
    weights: list[Tensor]       # per layer (B, K)


def minmax(maps: Tensor) -> Tensor:
    """Per-map min-max scaling over the last two dims; constant maps become 0."""
    lo = maps.amin(dim=(-2, -1), keepdim=True)
    rng = maps.amax(dim=(-2, -1), keepdim=True) - lo
    return torch.where(rng > 0, (maps - lo) / torch.where(rng > 0, rng, 1), 0)


class BaseCAM:
    """Base of every CAM explainer.

    Args:
        model: any ``nn.Module`` classifier returning logits (B, C). Its mode is
            left as it is (call ``.eval()`` first: batch-norm in training mode
            mixes the images of a batch); a model in training mode gets a warning.
        target_layers: modules or dotted names (``"layer4"``, ``"features.29"``);
            None -> the last module with a spatial 4-D output (a dry run on the
            first batch). With several layers the maps are averaged and rescaled
            (pytorch-grad-cam's convention).
        normalize: None (the model sees the tensor given) or ``(mean, std)``: the
            input is pixel-space in [0, 1] and the model sees ``(x − mean)/std``.

    Use as ``cam(x, targets)`` or in a ``with`` block; hooks live only during a
    call and are removed on return and on error; errors are never swallowed.

    ``reshape_transform`` (attribute, default None): a function applied to each
    target layer's raw output to give the (B,K,h,w) activation, e.g. a ViT's
    tokens into a grid (pytorch-grad-cam's argument of that name; the gradient
    is ``reshape_transform(∂s/∂output)``, as there). Methods that split the
    model at the layer (LIFT-CAM, Shap-CAM) do not use it.
    """

    #: whether the method needs the gradient of the target score w.r.t. A
    needs_grad: bool = True

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 normalize: Normalize = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.normalize = normalize
        self.target_layers = resolve_layers(model, target_layers)
        self.reshape_transform: Optional[Transform] = None
        self.last: Optional[CAMRecord] = None
        self.last_extra: dict = {}   # a method's own values for the next CAMRecord
        self._input: Optional[Tensor] = None

    def __enter__(self) -> "BaseCAM":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False

    # -- what a method defines -------------------------------------------------
    def channel_weights(self, activations: list[Tensor], logits: Tensor, scores: Tensor,
                        targets: Targets) -> list[Tensor]:
        """Per-layer channel weights (B, K) from the activations and target scores."""
        raise NotImplementedError

    def combine(self, A: Tensor, w: Tensor, size: tuple[int, int]) -> Tensor:
        """One layer's map at ``size``: ``minmax(up(ReLU(Σ_k w_k A_k)))`` (the fused op)."""
        return cam_combine(A, w.to(A.dtype), size)

    # -- the shared pipeline -----------------------------------------------------
    def _layers_for(self, x_model: Tensor) -> list[nn.Module]:
        if self.target_layers is None:
            self.target_layers = [find_spatial_layer(self.model, x_model)]
        return self.target_layers

    def forward_capture(self, x: Tensor, targets: TargetSpec):
        """One forward of the batch with the target layers hooked: returns the
        activations (per layer), logits, the resolved targets and their scores."""
        check_images(x)
        if self.model.training:
            warnings.warn("the model is in training mode; call model.eval() for "
                          "per-image explanations", stacklevel=3)
        x_model = normalizer(self.normalize, x)(x)
        layers = self._layers_for(x_model)
        grad_mode = torch.enable_grad() if self.needs_grad else torch.inference_mode()
        with grad_mode, ActivationCapture(layers, track_grad=self.needs_grad,
                                          transform=self.reshape_transform) as capture:
            logits = self.model(x_model)
            if not isinstance(logits, Tensor):
                raise ValueError(f"the model returned {type(logits).__name__}; fastcam needs "
                                 "a tensor of logits (B, C)")
            resolved = resolve_targets(targets, logits)
            scores = resolved.scores(logits)
        activations = capture.collected()
        if not self.needs_grad:
            # tensors made under inference mode cannot enter autograd later
            # (Opti-CAM optimises through the activations); normal copies can.
            activations = [a.clone() for a in activations]
            logits, scores = logits.clone(), scores.clone()
            if resolved.indices is not None:
                resolved = Targets(resolved.indices.clone(), None)
        return activations, logits, resolved, scores

    def compute_weights(self, x: Tensor, targets: TargetSpec = None) -> Weighted:
        """The forward capture and the channel weights of every target layer:
        what :meth:`__call__` turns into maps (front-ends combine them their way)."""
        activations, logits, resolved, scores = self.forward_capture(x, targets)
        self._input = x  # perturbation methods (Score-CAM) rerun the model on x
        try:
            weights = self.channel_weights(activations, logits, scores, resolved)
        finally:
            self._input = None
        return Weighted(activations, logits, resolved, scores, weights)

    def __call__(self, x: Tensor, targets: TargetSpec = None) -> Tensor:
        """Maps (B, H, W), float32 in [0, 1], on x's device, at x's resolution."""
        activations, logits, resolved, scores, weights = self.compute_weights(x, targets)
        size = tuple(x.shape[-2:])
        with torch.no_grad():
            maps = [self.combine(A.detach(), w.detach(), size)
                    for A, w in zip(activations, weights, strict=True)]
            out = maps[0] if len(maps) == 1 else minmax(torch.stack(maps).mean(0))
            extra = self.last_extra
            self.last_extra = {}
            self.last = CAMRecord(
                logits=logits.detach(), targets=resolved.indices, scores=scores.detach(), extra=extra,
                activations=[A.detach() for A in activations],
                weights=[w.detach() for w in weights],
                low_res=[torch.relu(torch.einsum("bk,bkhw->bhw", w.detach().to(A.dtype), A.detach()))
                         for A, w in zip(activations, weights)])
        return out.float()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(target_layers={self.target_layers}, normalize={self.normalize})"


def gradients(scores: Tensor, activations: list[Tensor]) -> list[Tensor]:
    """∂ score_b / ∂ A_b for every layer, in one backward pass that stops at the
    target layers (images are independent, so the gradient of the sum is per image)."""
    with torch.enable_grad():  # the caller may be inside torch.no_grad()
        return list(torch.autograd.grad(scores.sum(), activations))
