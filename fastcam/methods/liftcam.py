"""LIFT-CAM (Jung & Oh, "Towards Better Explanations of Class Activation
Mapping", ICCV 2021, arXiv 2102.05228)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..network.deeplift import DeepLift, DeepLiftPass
from ..network.layers import LayerSpec
from ..network.split import Tail
from ..targets import Targets
from .base import BaseCAM, CallContext, CommonOptions, Unpack


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

    capture = "split"

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *, eps: float = 1e-6,
                 **options: Unpack[CommonOptions]):
        super().__init__(model, target_layers, **options)
        self.eps = float(eps)
        self._engines: dict[int, tuple[Tail, DeepLift]] = {}

    def _deeplift(self, tail: Tail) -> DeepLift:
        hit = self._engines.get(id(tail))
        if hit is None or hit[0] is not tail:
            hit = (tail, DeepLift(tail, self.eps))
            self._engines[id(tail)] = hit
        return hit[1]

    def tail_forward(self, tail: Tail, A: Tensor) -> tuple[Tensor, DeepLiftPass]:
        """The DeepLIFT forward of the tail over ``[A; 0]``: the logits are the
        tail's rows for A, and the pass is kept for the backward."""
        run = self._deeplift(tail).forward(A)
        return run.output.detach(), run

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        targets = ctx.targets
        weights, extra = [], {"contributions": [], "delta": [], "reference_scores": [],
                              "summation_error": []}
        if targets.indices is not None and targets.indices.is_inference():
            with torch.inference_mode(False):    # resolved inside the caller's inference mode
                targets = Targets(targets.indices.clone(), None)
        for run in ctx.tail_runs:
            with torch.inference_mode(False), torch.enable_grad():   # the caller may be in no_grad
                s = targets.scores(run.output)
                s0 = targets.scores(run.ref_output)
                result = run.attribute(s, s0, check_summation=targets.callables is None)
            weights.append(result.contributions.sum(dim=(2, 3)))
            extra["contributions"].append(result.contributions)
            extra["delta"].append(result.delta)
            extra["reference_scores"].append(s0.detach())
            extra["summation_error"].append(result.summation_error)
        ctx.extra.update(extra)
        return weights
