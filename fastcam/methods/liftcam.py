"""LIFT-CAM (Jung & Oh, "Towards Better Explanations of Class Activation
Mapping", ICCV 2021, arXiv 2102.05228)."""
from __future__ import annotations

import warnings
from typing import Optional

import torch
from torch import Tensor, nn

from ..inputs import check_images, normalizer
from ..network.deeplift import DeepLift, DeepLiftPass
from ..network.layers import LayerSpec
from ..network.split import Tail, split
from ..targets import TargetSpec, Targets, resolve_targets
from .base import BaseCAM


class LiftCAM(BaseCAM):
    """LIFT-CAM: channel weights ``φ_k = Σ_ij C_kij``, the DeepLIFT (Rescale rule)
    contributions of the activation ``A`` to the target score through the rest
    of the network (the *tail*), against the reference activation ``A⁰ = 0``
    (paper eq. 8-10: φ approximates the Shapley value of each channel's feature
    map). Map ``minmax(up(ReLU(Σ_k φ_k A_k)))``.

    Properties that follow from DeepLIFT: ``Σ_k φ_k = y_c(A) − y_c(0)``
    (summation-to-delta), and on a linear tail -- global average pooling and
    one fully-connected layer (ResNet, EfficientNet) -- ``φ_k = W[c,k]·mean(A_k)``.

    How it runs: the model is split at the target layer
    (:func:`fastcam.network.split.split`, torch.fx); the prefix runs once on
    the batch (no autograd), then one forward of the tail on the rows
    ``[A; 0]`` (the zero reference is one shared row) gives the logits and the
    reference logits, and one backward with the Rescale multipliers gives ``C``
    for every image (:mod:`fastcam.network.deeplift`). So the network runs
    once, as in inference, plus one tail backward; the official code instead
    runs Captum's DeepLift on the tail one image at a time.

    Targets: class indices explain the raw logit (paper and official code).
    Per-image callables ``f(logits_row)`` are applied to the tail output of the
    image and of the reference; the multiplier at the logits is the gradient of
    ``f`` -- exact DeepLIFT for targets linear in the logits (pytorch-grad-cam's
    ``ClassifierOutputTarget``, logit differences), an approximation otherwise
    (summation-to-delta then need not hold).

    Args:
        eps: below this ``|Δx|`` a nonlinearity's multiplier is its gradient.

    ``last.extra`` holds, per target layer, ``"contributions"`` (B,K,h,w),
    ``"delta"`` (B,) = score(A) − score(0), ``"reference_scores"`` (B,) and
    ``"summation_error"`` (B,) = ``|Σ C − delta|``.
    """

    needs_grad = False

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *, normalize=None,
                 eps: float = 1e-6):
        super().__init__(model, target_layers, normalize=normalize)
        self.eps = float(eps)
        self._engines: dict[int, tuple[Tail, DeepLift]] = {}
        self._passes: Optional[list[DeepLiftPass]] = None

    def _engine(self, tail: Tail) -> DeepLift:
        hit = self._engines.get(id(tail))
        if hit is None or hit[0] is not tail:
            hit = (tail, DeepLift(tail, self.eps))
            self._engines[id(tail)] = hit
        return hit[1]

    def forward_capture(self, x: Tensor, targets: TargetSpec):
        """Prefix once (no autograd), then the DeepLIFT forward of the tail over
        ``[A; 0]``: the logits come from the tail's rows for A."""
        check_images(x)
        if self.model.training:
            warnings.warn("the model is in training mode; call model.eval() for "
                          "per-image explanations", stacklevel=3)
        x_model = normalizer(self.normalize, x)(x)
        layers = self._layers_for(x_model)
        passes = []
        for layer in layers:
            prefix, tail = split(self.model, layer)
            engine = self._engine(tail)
            engine.plan()     # unsupported tail layers fail before the forward
            with torch.no_grad():
                A = prefix(x_model)
            if A.dim() != 4:
                raise ValueError(f"target layer {type(layer).__name__} has no spatial output: "
                                 f"its output has shape {tuple(A.shape)}, expected (B,K,h,w)")
            passes.append(engine.forward(A))
        logits = passes[0].output.detach()
        if logits.dim() != 2:
            raise ValueError(f"the model returned shape {tuple(logits.shape)}; fastcam needs "
                             "logits (B, C)")
        resolved = resolve_targets(targets, logits)
        scores = resolved.scores(logits)
        self._passes = passes
        return [p.activations.detach() for p in passes], logits, resolved, scores

    def channel_weights(self, activations, logits, scores, targets: Targets) -> list[Tensor]:
        passes, self._passes = self._passes, None
        if passes is None:
            raise RuntimeError("LiftCAM.channel_weights runs after LiftCAM.forward_capture")
        weights, extra = [], {"contributions": [], "delta": [], "reference_scores": [],
                              "summation_error": []}
        if targets.indices is not None and targets.indices.is_inference():
            with torch.inference_mode(False):    # resolved inside the caller's inference mode
                targets = Targets(targets.indices.clone(), None)
        for run in passes:
            with torch.inference_mode(False), torch.enable_grad():   # the caller may be in no_grad
                s = targets.scores(run.output)
                s0 = targets.scores(run.ref_output)
                result = run.attribute(s, s0, check_summation=targets.callables is None)
            weights.append(result.contributions.sum(dim=(2, 3)))
            extra["contributions"].append(result.contributions)
            extra["delta"].append(result.delta)
            extra["reference_scores"].append(s0.detach())
            extra["summation_error"].append(result.summation_error)
        self.last_extra = extra
        return weights
