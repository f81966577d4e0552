"""Finer-CAM ("Spotting the Difference Reveals Finer Details for Visual Explanation",
arXiv 2501.11309, 2025): a base CAM of a contrastive target score."""
from __future__ import annotations

import math
from typing import Any, ClassVar, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..network.layers import LayerSpec
from .base import BaseCAM, CallContext, channel_sum, common_options
from .gradcam import GradCAM

#: pytorch-grad-cam's ``FinerWeightedTarget`` eps
_EPS = 1e-9


def check_base_method(owner: str, base_method: type) -> type:
    """``base_method`` if it can be the base method of a meta-method (Finer-CAM,
    Refine-CAM): a gradient method defined by its channel weights or weighted
    activations."""
    if not (isinstance(base_method, type) and issubclass(base_method, BaseCAM)):
        raise TypeError(f"{owner}'s base_method must be a fastcam method class (a subclass of "
                        f"fastcam.methods.BaseCAM), got {base_method!r}")
    if base_method.capture != "gradient" or base_method.input_gradient or base_method.maps is not BaseCAM.maps:
        raise ValueError(f"{owner}'s base_method must be a gradient method defined by its channel "
                         f"weights or weighted activations (GradCAM, GradCAMPlusPlus, XGradCAM, "
                         f"LayerCAM, HiResCAM, ...), got {base_method.__name__}")
    return base_method


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A meta-method's keywords: (the common options, the others), both for its base method."""
    names = {p.name for p in common_options()}
    common = {k: v for k, v in options.items() if k in names}
    return common, {k: v for k, v in options.items() if k not in names}


def layer_maps(base: BaseCAM, ctx: CallContext) -> list[Tensor]:
    """The base method's per-layer low-resolution sums ``Σ_k w_k A_k`` (or ``Σ_k T_k``),
    before the ReLU; sets ``ctx.weights`` or ``ctx.terms`` and ``ctx.low_res``."""
    if base.elementwise():
        ctx.terms = [T.detach().float() for T in base.weighted_activations(ctx)]
        sums = [T.sum(dim=1) for T in ctx.terms]
    else:
        ctx.weights = [w.detach().float() for w in base.channel_weights(ctx)]
        sums = [channel_sum(A.detach().float(), w)
                for w, A in zip(ctx.weights, ctx.activations, strict=True)]
    ctx.low_res = [torch.relu(s) for s in sums]
    return sums


class FinerCAM(BaseCAM):
    """Finer-CAM: the base method (Grad-CAM by default) explains a contrastive score
    of the target class c against the classes whose logits are closest to y_c
    (the paper's "spotting the difference"; its maps are then the base method's).

    The comparison classes d_1..d_T: the classes at the ranks ``comparison_categories``
    of the order by ``|y_k − y_c|`` (rank 0 is c itself), or the explicit
    ``comparison_classes`` ((T,) for every image or (B, T)). The score is
    pytorch-grad-cam 1.5.7's ``FinerWeightedTarget`` (the reference code):
    ``Σ_t p_dt (y_c − α y_dt) / (Σ_t p_dt + 1e-9)`` with p = softmax(y),
    differentiated through p as well; α = ``alpha`` (default 1). TorchCAM 0.5.0's
    ``FinerCAM`` (``y_c − γ · mean_t y_dt``, γ = 0.6, TorchCAM's map scaling):
    :class:`fastcam.compat.numerics.TorchCAMFinerCAM`.

    ``targets`` are class indices (None: the predicted class, pytorch-grad-cam's
    default); a callable target has no class to contrast and is a ``ValueError``.
    ``last.extra["comparison_classes"]``: the (B, T) classes used;
    ``last.extra["contrastive_scores"]``: the (B,) scores explained.

    Args:
        base_method: a native gradient method class (GradCAM, GradCAMPlusPlus,
            LayerCAM, XGradCAM, HiResCAM, ...).
        **base_options: further keywords for ``base_method`` (the common options
            ``normalize``, ``precision``, ``compile`` go to it too).
    """

    #: ``alpha``'s default
    default_alpha: ClassVar[float] = 1.0

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 base_method: type = GradCAM, alpha: Optional[float] = None,
                 comparison_categories: Sequence[int] = (1, 2, 3),
                 comparison_classes: Union[None, Sequence[int], Sequence[Sequence[int]], Tensor] = None,
                 **base_options: Any):
        common, base_options = split_options(base_options)
        super().__init__(model, target_layers, **common)
        if alpha is None:
            alpha = self.default_alpha
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
            raise ValueError(f"alpha must be a finite real number, got {alpha!r}")
        self.alpha = float(alpha)
        ranks = [int(r) for r in comparison_categories]
        if not ranks or any(r < 1 for r in ranks) or len(set(ranks)) != len(ranks):
            raise ValueError("comparison_categories must be distinct ranks >= 1 (rank 0 is the "
                             f"target class itself), got {list(comparison_categories)!r}")
        self.comparison_categories = ranks
        self.comparison_classes = comparison_classes
        self.base = self.base_class(check_base_method("FinerCAM", base_method))(
            model, self.target_layers, **common, **base_options)
        # the base method only weights this explainer's call context: it runs no pass
        # of its own, and shares this engine rather than holding a second one
        self.base.engine = self.engine

    def base_class(self, base_method: type) -> type:
        """The class the base method is built from (the given one)."""
        return base_method

    def _references(self, logits: Tensor, target: Tensor) -> Tensor:
        B, C = logits.shape
        if C < 2:
            raise ValueError("FinerCAM needs a model with at least two classes to compare")
        if self.comparison_classes is not None:
            refs = torch.as_tensor(self.comparison_classes, device=logits.device)
            if refs.is_floating_point() or refs.dim() not in (1, 2) or refs.numel() == 0:
                raise ValueError("comparison_classes must be (T,) or (B, T) class indices")
            refs = refs.long().expand(B, -1) if refs.dim() == 1 else refs.long()
            if refs.shape[0] != B:
                raise ValueError(f"comparison_classes has {refs.shape[0]} rows for a batch of {B}")
            if (refs < 0).any() or (refs >= C).any():
                raise ValueError(f"comparison_classes must lie in [0, {C})")
            if (refs == target[:, None]).any():
                raise ValueError("comparison_classes contains an image's target class")
            if any(len(set(row)) != len(row) for row in refs.tolist()):
                raise ValueError("comparison_classes contains duplicates")
            return refs
        ranks = [r for r in self.comparison_categories if r < C]
        if not ranks:
            raise ValueError(f"no comparison rank in {self.comparison_categories} below the "
                             f"number of classes {C}")
        distance = (logits.detach() - logits.detach().gather(1, target[:, None])).abs()
        distance.scatter_(1, target[:, None], -1.0)        # the target is rank 0
        order = distance.argsort(dim=1, stable=True)
        return order[:, ranks]

    def contrastive_scores(self, logits: Tensor, target: Tensor, refs: Tensor) -> Tensor:
        """The (B,) contrastive scores (differentiable in ``logits``)."""
        y_c = logits.gather(1, target[:, None])[:, 0]
        y_d = logits.gather(1, refs)
        p = logits.softmax(dim=1).gather(1, refs)
        return (p * (y_c[:, None] - self.alpha * y_d)).sum(dim=1) / (p.sum(dim=1) + _EPS)

    def target_scores(self, ctx: CallContext) -> Tensor:
        """The contrastive scores (B,) the base method's gradients are of."""
        target = ctx.targets.indices
        if target is None:
            raise ValueError("FinerCAM contrasts a target class with others: give class "
                             "indices (or None for the predicted class), not callables")
        refs = self._references(ctx.logits, target)
        scores = self.contrastive_scores(ctx.logits, target, refs)
        ctx.extra["comparison_classes"] = refs
        ctx.extra["contrastive_scores"] = scores.detach()
        return scores

    def maps(self, ctx: CallContext) -> Tensor:
        return self.base.maps(ctx)
