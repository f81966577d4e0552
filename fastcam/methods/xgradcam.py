"""XGrad-CAM (Fu et al., BMVC 2020)."""
from __future__ import annotations

from torch import Tensor

from . import torchcam_numerics as tc
from .base import CallContext
from .torchcam_mode import TorchCAMMode


class XGradCAM(TorchCAMMode):
    """XGrad-CAM: ``α_k = Σ_ij (A_kij / (Σ_ab A_kab + eps)) · ∂y_c/∂A_kij`` (paper eq. 9,
    the axiom-derived weights), map ``minmax(up(ReLU(Σ_k α_k A_k)))``.
    Cost: one forward, one backward to the target layer.

    Modes (keyword ``mode``):
      - ``"pytorch-grad-cam"`` (default): eps = 1e-7, pytorch-grad-cam 1.5.7's value
        (it keeps a channel whose activations sum to 0 finite).
      - ``"torchcam"``: TorchCAM 0.5.0's numerics: eps = 1e-8, and the map is
        ``up(normalize(ReLU(Σ_k α_k A_k)))`` with TorchCAM's normalisation
        ``(m − min)/(max − min + 1e-8)`` at the layer's resolution
        (:mod:`fastcam.methods.torchcam_numerics`).
    """

    eps: float = 1e-7

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        eps = tc.EPS if self.mode == "torchcam" else self.eps
        weights = []
        for A, g in zip(ctx.activations, ctx.gradients):
            A = A.detach()
            weights.append((g * A).sum(dim=(2, 3)) / (A.sum(dim=(2, 3)) + eps))
        return weights

