"""TorchCAM's gradient-based extractors (``torchcam.methods.gradient``) on fastcam's methods."""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

import torch
from torch import Tensor, nn

from ....engine import Precision, check_precision
from ....methods.base import CallContext
from ....methods.elementwise import LayerCAM as _LayerCAM
from ....methods.gradcam import GradCAM as _GradCAMNative
from ....methods.gradcam_plusplus import GradCAMPlusPlus as _GradCAMPlusPlus
from ....methods.smoothgradcampp import SmoothGradCAMpp as _SmoothNative
from ...numerics import (TorchCAMGradCAMPlusPlus, TorchCAMLayerCAM, TorchCAMSmoothGradCAMpp,
                         TorchCAMXGradCAM, normalize)
from ....methods.xgradcam import XGradCAM as _XGradCAM
from .core import _CAM, ClassIdx, LayerArg, target_scores

__all__ = ["GradCAM", "GradCAMpp", "SmoothGradCAMpp", "XGradCAM", "LayerCAM"]

Numerics = Literal["torchcam", "fastcam"]


class _GradCAM(_CAM):
    """Base of the gradient methods: the target layers' outputs stay in autograd,
    and a call differentiates the user's target scores w.r.t. them.

    TorchCAM 0.5 gets the gradient with ``torch.autograd.grad(score, outputs)``;
    so does this class (earlier TorchCAM versions called ``score.backward()``,
    which also writes every parameter's ``.grad``). The backward runs from the
    scores to the target layers only and writes no ``.grad``; ``retain_graph=True``
    (call keyword) keeps the graph for another call on the same forward.

    The gradient g (``reshape_transform(g)`` with a transform) is handed to the
    native method through a call context whose activations are detached leaves
    ``A`` and whose scores are ``Σ_ij A·g`` per image: the native method's own
    ``∂score/∂A`` is then exactly g, so its weights are computed as in a fastcam
    call on the same forward.

    Args:
        numerics: ``"torchcam"`` (default: TorchCAM 0.5's constants and formulas
            where fastcam's differ, see each class) or ``"fastcam"`` (the native
            method's own).
    """

    relu = True
    score_used = True
    targets_supported = True
    keeps_graph = True
    #: the class with TorchCAM's numerics (:mod:`fastcam.compat.numerics`), where they
    #: differ from the native class's (Grad-CAM's weights need none: TorchCAM's agree)
    torchcam_native: ClassVar[Optional[type]] = None

    def __init__(self, model: nn.Module, target_layer: LayerArg = None,
                 input_shape: tuple[int, ...] = (3, 224, 224), *, numerics: Numerics = "torchcam",
                 **kwargs: Any) -> None:
        if numerics not in ("torchcam", "fastcam"):
            raise ValueError(f"numerics must be 'torchcam' or 'fastcam', got {numerics!r}")
        self.numerics = numerics
        super().__init__(model, target_layer, input_shape, **kwargs)

    def _make_method(self):
        if self.numerics == "torchcam" and self.torchcam_native is not None:
            return self.torchcam_native(self.model, self._layers)
        return self.native(self.model, self._layers)

    def _selected_scores(self, class_idx: Optional[ClassIdx], scores: Any, targets: Any) -> Tensor:
        if targets is not None:
            return target_scores(scores, targets)
        idx = self._class_indices(class_idx, scores.shape[0], scores.device)
        return scores.gather(1, idx[:, None])[:, 0]

    def _backprop(self, scores: Any, class_idx: Optional[ClassIdx], retain_graph: bool = False,
                  targets: Any = None) -> list[Tensor]:
        """g = ∂(Σ_n score_n)/∂(layer output) per target layer (``hook_g``, transformed);
        also when called under ``torch.no_grad()`` or ``torch.inference_mode()``."""
        with torch.inference_mode(False), torch.enable_grad():
            return self._gradients(scores, class_idx, retain_graph, targets)

    def _gradients(self, scores: Any, class_idx: Optional[ClassIdx], retain_graph: bool,
                   targets: Any) -> list[Tensor]:
        selected = self._selected_scores(class_idx, scores, targets)
        if not selected.requires_grad:
            raise RuntimeError("the scores carry no autograd graph: run the forward with gradients "
                               "enabled (not under torch.no_grad() or torch.inference_mode()) and "
                               "pass its output as `scores`")
        outputs = self._hook_outputs
        for name, out in zip(self.target_names, outputs):
            if out is None or not out.requires_grad:
                raise RuntimeError(f"the output of target layer '{name}' was recorded without autograd: "
                                   "run the forward with gradients enabled")
        try:
            grads = torch.autograd.grad(selected.sum(), outputs, retain_graph=retain_graph)
        except RuntimeError as exc:
            raise RuntimeError("target score is not connected to every target layer (or the graph "
                               "was freed by an earlier call: pass retain_graph=True to reuse a "
                               "forward)") from exc
        if self._reshape_transform is not None:
            grads = tuple(self._reshape_transform(g) for g in grads)
        self.hook_g = [g.detach() for g in grads]
        return self.hook_g

    def _native_context(self, class_idx: Optional[ClassIdx], scores: Any, targets: Any,
                        retain_graph: bool = False) -> CallContext:
        grads = self._backprop(scores, class_idx, retain_graph=retain_graph, targets=targets)
        activations = [A.detach() for A in self.hook_a]
        resolved = self._resolved_targets(class_idx, targets, activations[0].shape[0],
                                          activations[0].device)
        return self._context(activations, resolved, gradients=grads,
                             logits=scores.detach() if isinstance(scores, Tensor) else None)

    def _get_weights(self, class_idx: Optional[ClassIdx], scores: Any, *, targets: Any = None,
                     retain_graph: bool = False, **_: Any) -> list[Tensor]:
        ctx = self._native_context(class_idx, scores, targets, retain_graph)
        with torch.inference_mode(False):
            if self._method.elementwise():
                return self._method.weighted_activations(ctx)
            return self._method.channel_weights(ctx)

    def compute_cams(self, class_idx: Optional[ClassIdx] = None, scores: Any = None, normalized: bool = True,
                     *, targets: Any = None, **kwargs: Any) -> list[Tensor]:
        if not self._method.elementwise():
            return super().compute_cams(class_idx, scores, normalized, targets=targets, **kwargs)
        terms = self._get_weights(class_idx, scores, targets=targets, **kwargs)
        with torch.no_grad():
            cams = [torch.relu(torch.nansum(T.detach(), dim=1)) for T in terms]
            return [normalize(c, spatial_dims=c.dim() - 1) if normalized else c for c in cams]


class GradCAM(_GradCAM):
    """Grad-CAM (Selvaraju et al. 2017): ``w_k = mean_ij ∂y_c/∂A_k(i,j)`` (paper eq. 1),
    map ``ReLU(Σ_k w_k A_k)`` — :class:`fastcam.methods.gradcam.GradCAM`'s weights
    (TorchCAM and fastcam agree)."""

    native = _GradCAMNative


class GradCAMpp(_GradCAM):
    """Grad-CAM++ (Chattopadhay et al. 2018) on :class:`fastcam.methods.gradcam_plusplus.GradCAMPlusPlus`.

    ``numerics="torchcam"`` (default): TorchCAM 0.5's weights as its code computes
    them, ``w_k = Σ_ij g² · ReLU(g)`` (its docstring's α = g²/(2g² + Σ A g³) is
    computed on a copy and dropped), :class:`fastcam.compat.numerics.TorchCAMGradCAMPlusPlus`.
    ``numerics="fastcam"``: the paper's closed form (eq. 19) as fastcam's native
    class computes it (pytorch-grad-cam's numerics)."""

    native = _GradCAMPlusPlus
    torchcam_native = TorchCAMGradCAMPlusPlus


class XGradCAM(_GradCAM):
    """XGrad-CAM (Fu et al. 2020): ``w_k = Σ_ij g·A / (Σ_ij A + eps)`` (paper eq. 9) —
    :class:`fastcam.methods.xgradcam.XGradCAM`'s weights, with TorchCAM's eps = 1e-8
    under ``numerics="torchcam"`` (:class:`fastcam.compat.numerics.TorchCAMXGradCAM`;
    fastcam's default: 1e-7)."""

    native = _XGradCAM
    torchcam_native = TorchCAMXGradCAM


class LayerCAM(_GradCAM):
    """LayerCAM (Jiang et al. 2021): ``M = ReLU(Σ_k ReLU(g_k) ⊙ A_k)`` (paper eq. 5–6),
    the terms of :class:`fastcam.methods.elementwise.LayerCAM`. :meth:`fuse_cams`
    scales each layer's map by ``tanh(2·M)`` first (paper eq. 9), as TorchCAM does."""

    native = _LayerCAM
    torchcam_native = TorchCAMLayerCAM

    @staticmethod
    def _scale_cams(cams: list[Tensor], gamma: float = 2.0) -> list[Tensor]:
        return [torch.tanh(gamma * cam) for cam in cams]



class SmoothGradCAMpp(_GradCAM):
    """Smooth Grad-CAM++ (Omeiza et al. 2019) with TorchCAM's interface, on the native
    :class:`fastcam.methods.smoothgradcampp.SmoothGradCAMpp` in TorchCAM's numerics
    (:class:`fastcam.compat.numerics.TorchCAMSmoothGradCAMpp`).

    TorchCAM 0.5's numerics: N noisy copies ``x + δ_s`` of the recorded input
    (δ ~ N(0, std²)); ``α = mean(g²) / (2·mean(g²) + Σ_ij A·mean(g³) + 1e-8)`` with A
    the recorded (clean) activation, ``w_k = Σ_ij α · ReLU(g_N)`` with g_N the last
    copy's gradient, and the map combines w with the last copy's activation (what
    TorchCAM's hook holds after its loop; ``hook_a`` holds it here too). The scores
    need not be passed. The noisy copies run through the native method's engine,
    ``batch_size`` at a time, with this extractor's hooks off. The noise comes from
    fastcam's seeded generator (``seed``), not TorchCAM's ``Normal.sample`` sequence.
    Keywords not in TorchCAM: ``batch_size`` (noisy copies per pass), ``seed``,
    ``precision`` (the engine's, for the noisy passes), ``numerics="fastcam"``
    (the native class: averaged gradient, clean activations).
    """

    score_used = False
    keeps_graph = False
    records_input = True

    def __init__(self, model: nn.Module, target_layer: LayerArg = None, num_samples: int = 4,
                 std: float = 0.3, input_shape: tuple[int, ...] = (3, 224, 224), *,
                 batch_size: int = 32, seed: Optional[int] = None, precision: Precision = "fp32",
                 **kwargs: Any) -> None:
        check_precision(precision)
        self.num_samples, self.std, self.batch_size, self.seed = num_samples, std, batch_size, seed
        self.precision = precision
        super().__init__(model, target_layer, input_shape, **kwargs)

    def _make_method(self):
        cls = TorchCAMSmoothGradCAMpp if self.numerics == "torchcam" else _SmoothNative
        return cls(self.model, self._layers, num_samples=self.num_samples, std=self.std,
                   batch_size=self.batch_size, seed=self.seed, precision=self.precision)

    def _get_weights(self, class_idx, scores=None, *, targets=None, **_):
        x = self._input
        batch = self.hook_a[0].shape[0]
        resolved = self._resolved_targets(class_idx, targets, batch, x.device)
        ctx = self._context(list(self.hook_a), resolved, x=x)
        with self._hooks_off():
            weights = self._method.channel_weights(ctx)
        self.hook_a = [A.detach() for A in ctx.activations]
        return weights

    def _extra_repr(self) -> str:
        return f"target_layer={self.target_names}, num_samples={self.num_samples}, std={self.std}"
