"""Other libraries' numerics where they differ from fastcam's native methods.

The native methods (:mod:`fastcam.methods`) compute what their papers (or, where
a paper is silent, their reference code) define; they never import this module.
The front-ends (:mod:`fastcam.compat.torchcam`, :mod:`fastcam.compat.pytorch_grad_cam`)
build the subclasses below where TorchCAM 0.5.0 or pytorch-grad-cam 1.5.7
compute something else:

TorchCAM 0.5.0 (``torchcam.methods.core._CAM``) makes a layer's map at the
layer's resolution: ``cam = ReLU(Σ_k w_k A_k)`` (gradient methods), then
``_normalize``: ``(cam − min) / (max − min + 1e-8)`` per map. Several layers are
fused by ``fuse_cams``: each map resized bilinearly (align_corners=False) to the
largest layer's shape and the element-wise maximum taken, LayerCAM's maps first
scaled by ``tanh(2·cam)`` (its paper's eq. 9). The ``TorchCAM*`` classes' maps are
the normalised low-resolution map upsampled bilinearly to the input size
(:class:`TorchCAMNumerics`), with TorchCAM's weights where they differ.

pytorch-grad-cam 1.5.7: Score-CAM's masks (align_corners=True, +1e-8 in the
min-max: :class:`PytorchGradCAMScoreCAM`) and ``AblationLayer``'s ablation values
(:class:`PytorchGradCAMAblationCAM`).
"""
from __future__ import annotations

from typing import ClassVar, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..methods.ablationcam import AblationCAM
from ..methods.base import (BaseCAM, CallContext, CommonOptions, Unpack, channel_sum,
                            minmax_eps, upsample)
from ..methods.elementwise import LayerCAM
from ..methods.finercam import FinerCAM, layer_maps
from ..methods.gradcam import GradCAM
from ..methods.gradcam_plusplus import GradCAMPlusPlus
from ..methods.refinecam import RefineCAM
from ..methods.scorecam import ScoreCAM, ScoreNumerics
from ..methods.smoothgradcampp import NoisyGradients, SmoothGradCAMpp
from ..methods.xgradcam import XGradCAM
from ..network.layers import LayerSpec

__all__ = ["EPS", "normalize", "combine", "fuse_cams", "TorchCAMNumerics", "TorchCAMGradCAM",
           "TorchCAMGradCAMPlusPlus", "TorchCAMXGradCAM", "TorchCAMLayerCAM",
           "TorchCAMSmoothGradCAMpp", "TorchCAMFinerCAM", "TorchCAMRefineCAM", "torchcam_class",
           "PGC_OFFSET", "ablation_values", "PytorchGradCAMScoreCAM", "PytorchGradCAMAblationCAM"]

# -- TorchCAM 0.5.0 ---------------------------------------------------------------------

#: TorchCAM's ``_CAM._normalize`` eps
EPS = 1e-8


def normalize(cams: Tensor, eps: float = EPS, spatial_dims: int = 2) -> Tensor:
    """TorchCAM's ``_normalize`` (not in place): ``(m − min) / (max − min + eps)``
    over the last ``spatial_dims`` dims (TorchCAM's default for its (N, h, w)
    or (N, d, h, w) maps: all but the batch dim)."""
    return minmax_eps(cams, eps, spatial_dims)


def combine(A: Tensor, w: Tensor, size: tuple[int, int]) -> Tensor:
    """One layer's map at ``size``: ``up(normalize(ReLU(Σ_k w_k A_k)))``."""
    return upsample(normalize(torch.relu(channel_sum(A, w))), size)


def largest_shape(cams: Sequence[Tensor]) -> tuple[int, ...]:
    """The largest size per spatial dim of maps (N, *spatial)."""
    return tuple(max(s) for s in zip(*[tuple(c.shape[1:]) for c in cams]))


def resize_map(cam: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Maps (N, *spatial) resized to ``shape`` as TorchCAM resizes them: bilinear
    (2-D) or trilinear (3-D) with align_corners=False, else nearest."""
    mode = {3: "bilinear", 4: "trilinear"}.get(cam.dim(), "nearest")
    options = {} if mode == "nearest" else {"align_corners": False}
    return F.interpolate(cam.unsqueeze(1), shape, mode=mode, **options).squeeze(1)


def fuse_cams(cams: Sequence[Tensor], target_shape: Optional[tuple[int, ...]] = None,
              layercam: bool = False) -> Tensor:
    """TorchCAM's ``fuse_cams`` of per-layer maps (N, *spatial) (normalised ones,
    as TorchCAM's extractors return them): LayerCAM's ``tanh(2·cam)`` scaling
    when ``layercam``, resizing to ``target_shape`` (default: the largest size per
    dim; :func:`resize_map`), element-wise maximum. One map is returned as it is."""
    cams = list(cams)
    if not cams:
        raise ValueError("fuse_cams needs at least one map")
    if len(cams) == 1:
        return cams[0]
    shape = target_shape or largest_shape(cams)
    if layercam:
        cams = [torch.tanh(2.0 * c) for c in cams]
    fused = resize_map(cams[0], shape)
    for c in cams[1:]:
        fused = torch.maximum(fused, resize_map(c, shape))
    return fused


class TorchCAMNumerics(BaseCAM):
    """Mixin: a layer's map is ``up(normalize(ReLU(Σ_k w_k A_k)))`` with TorchCAM's
    normalisation at the layer's resolution (:func:`combine`); several layers are
    averaged and rescaled as the native maps are."""

    def combine(self, A: Tensor, w: Tensor, size: tuple[int, int]) -> Tensor:
        return combine(A, w, size)


class TorchCAMGradCAM(TorchCAMNumerics, GradCAM):
    """Grad-CAM with TorchCAM 0.5.0's map scaling (its weights are fastcam's)."""


class TorchCAMXGradCAM(TorchCAMNumerics, XGradCAM):
    """XGrad-CAM as TorchCAM 0.5.0 computes it: eps = 1e-8 in
    ``α_k = Σ_ij g·A / (Σ_ij A + eps)`` and TorchCAM's map scaling."""

    eps: float = EPS


class TorchCAMGradCAMPlusPlus(TorchCAMNumerics, GradCAMPlusPlus):
    """Grad-CAM++ as TorchCAM 0.5.0's ``GradCAMpp`` computes it. Its code forms
    ``a = g²`` and divides ``a[g² > 0]`` in place by ``2 g² + Σ_ab g³_ab A_ab + 1e-8``;
    boolean indexing makes a copy, so the division never reaches ``a`` and the
    weights are ``α_k = Σ_ij g²_kij · ReLU(g_kij)``. TorchCAM's map scaling."""

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        return [(g * g * torch.relu(g)).sum(dim=(2, 3))
                for g in ctx.gradients]


class TorchCAMLayerCAM(TorchCAMNumerics, LayerCAM):
    """LayerCAM with TorchCAM 0.5.0's map scaling; its multi-layer fusion
    (``tanh(2·cam)`` then the maximum) is :func:`fuse_cams` with ``layercam=True``
    on the normalised ``last.low_res`` maps (the maps here stay the mean)."""


class TorchCAMSmoothGradCAMpp(SmoothGradCAMpp):
    """Smooth Grad-CAM++ as TorchCAM 0.5.0's ``SmoothGradCAMpp`` computes it: the
    pixel weights' ReLU term is the *last* noisy copy's gradient g_N and the map
    combines the weights with that copy's activation A(x + δ_N) (TorchCAM's hooks
    keep the last pass); ``last.activations`` is then A(x + δ_N) and
    ``last.extra["clean_activations"]`` the clean ones."""

    def weights_from(self, ctx: CallContext, noisy: NoisyGradients) -> list[Tensor]:
        weights = [self.pixel_weighted(d2, d3, A, G)
                   for d2, d3, A, G in zip(noisy.d2, noisy.d3, noisy.clean, noisy.last)]
        ctx.extra["clean_activations"] = noisy.clean
        ctx.activations = noisy.last_activations
        return weights


_TORCHCAM_CLASSES: dict[type, type] = {
    GradCAM: TorchCAMGradCAM, GradCAMPlusPlus: TorchCAMGradCAMPlusPlus,
    XGradCAM: TorchCAMXGradCAM, LayerCAM: TorchCAMLayerCAM,
}


def torchcam_class(method: type) -> type:
    """``method`` in TorchCAM's numerics: its ``TorchCAM*`` class above, else (a
    method TorchCAM does not have) the method with TorchCAM's map scaling."""
    if issubclass(method, TorchCAMNumerics):
        return method
    if method in _TORCHCAM_CLASSES:
        return _TORCHCAM_CLASSES[method]
    made = type(f"TorchCAM{method.__name__}", (TorchCAMNumerics, method),
                {"__doc__": f"{method.__name__} with TorchCAM 0.5.0's map scaling.",
                 "__module__": __name__})
    _TORCHCAM_CLASSES[method] = made
    return made


class TorchCAMFinerCAM(FinerCAM):
    """Finer-CAM as TorchCAM 0.5.0's ``FinerCAM``: the score ``y_c − γ · mean_t y_dt``,
    γ = ``alpha`` (default 0.6, TorchCAM's ``gamma``), the base method in its
    TorchCAM numerics (:func:`torchcam_class`) and so TorchCAM's map scaling."""

    default_alpha: ClassVar[float] = 0.6

    def base_class(self, base_method: type) -> type:
        return torchcam_class(base_method)

    def contrastive_scores(self, logits: Tensor, target: Tensor, refs: Tensor) -> Tensor:
        y_c = logits.gather(1, target[:, None])[:, 0]
        return y_c - self.alpha * logits.gather(1, refs).mean(dim=1)


class TorchCAMRefineCAM(RefineCAM):
    """Refine-CAM as TorchCAM 0.5.0's ``RefineCAM``: each layer's map
    ``normalize(ReLU(Σ_k w_k A_k))`` (the base method in its TorchCAM numerics) is
    resized bilinearly to the largest layer's resolution, the product normalised
    again (``last.extra["refined"]``, (B, h, w): TorchCAM's output) and upsampled
    to the input size. TorchCAM requires two target layers or more; so does this class."""

    min_layers: ClassVar[int] = 2

    def base_class(self, base_method: type) -> type:
        return torchcam_class(base_method)

    def maps(self, ctx: CallContext) -> Tensor:
        layer_maps(self.base, ctx)
        with torch.no_grad():
            shape = tuple(max(s) for s in zip(*[tuple(m.shape[-2:]) for m in ctx.low_res]))
            refined = torch.stack([upsample(normalize(m), shape) for m in ctx.low_res]).prod(dim=0)
            refined = normalize(refined)
            ctx.extra["refined"] = refined
            return upsample(refined, ctx.size)


# -- pytorch-grad-cam 1.5.7 ---------------------------------------------------------------

class PytorchGradCAMScoreCAM(ScoreCAM):
    """Score-CAM with the mode ``"pytorch-grad-cam"`` (default here), as
    pytorch-grad-cam's ScoreCAM: raw target score, softmax over channels,
    align_corners=True upsampling of the masks, +1e-8 in their min-max. The
    native modes (``"default"``, ``"official"``) stay available."""

    modes: ClassVar[dict[str, ScoreNumerics]] = {
        **ScoreCAM.modes, "pytorch-grad-cam": ScoreNumerics("logit", True, True, 1e-8, False)}

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 batch_size: int = 32, mode: str = "pytorch-grad-cam",
                 **options: Unpack[CommonOptions]):
        super().__init__(model, target_layers, batch_size=batch_size, mode=mode, **options)


#: pytorch-grad-cam's ABLATION_VALUE: the offset below the minimum when it is not 0
PGC_OFFSET = 1e7


def ablation_values(A: Tensor, ablation: str, chunk: int) -> Tensor:
    """(B, chunk) float32: the value an ablated channel gets, per image and batch
    position. ``"zero"``: 0 (the paper). ``"pytorch-grad-cam"``: its
    ``AblationLayer`` uses 0 when the image's activation has minimum 0 and
    otherwise ``min − 1e7``, applied one copy after the other in a forward batch
    of copies with the running minimum, so the copy at position i of a batch
    gets ``min − (i + 1)·1e7`` (computed in float32 one subtraction at a time)."""
    if ablation not in ("zero", "pytorch-grad-cam"):
        raise ValueError(f"ablation must be 'zero' or 'pytorch-grad-cam', got {ablation!r}")
    B = A.shape[0]
    if ablation == "zero":
        return torch.zeros(B, chunk, dtype=torch.float32, device=A.device)
    mins = A.detach().amin(dim=(1, 2, 3)).float().cpu().numpy()
    table = np.zeros((B, chunk), dtype=np.float32)
    for b, m in enumerate(mins):
        if m == 0:
            continue
        value = np.float32(m)
        for i in range(chunk):
            value = np.float32(value - np.float32(PGC_OFFSET))
            table[b, i] = value
    return torch.from_numpy(table).to(A.device)


class PytorchGradCAMAblationCAM(AblationCAM):
    """Ablation-CAM with pytorch-grad-cam's ``AblationLayer`` values
    (:func:`ablation_values` ``"pytorch-grad-cam"``: 0 when the image's activation
    has minimum 0, else ``min − (i+1)·1e7`` for the copy at batch position i; for
    a token model the minimum over all tokens). After a ReLU the two agree."""

    def ablation_values(self, A: Tensor) -> Tensor:
        return ablation_values(A, "pytorch-grad-cam", self.batch_size)
