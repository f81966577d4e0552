"""XGrad-CAM (Fu et al., BMVC 2020)."""
from __future__ import annotations

from torch import Tensor

from .base import BaseCAM, CallContext


class XGradCAM(BaseCAM):
    """XGrad-CAM: ``α_k = Σ_ij (A_kij / (Σ_ab A_kab + eps)) · ∂y_c/∂A_kij`` (paper eq. 9,
    the axiom-derived weights), map ``minmax(up(ReLU(Σ_k α_k A_k)))``, with
    eps = 1e-7, pytorch-grad-cam 1.5.7's value (it keeps a channel whose
    activations sum to 0 finite). Cost: one forward, one backward to the target layer.
    TorchCAM 0.5.0's numerics: :class:`fastcam.compat.numerics.TorchCAMXGradCAM`.
    """

    eps: float = 1e-7

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        weights = []
        for A, g in zip(ctx.activations, ctx.gradients):
            A = A.detach()
            weights.append((g * A).sum(dim=(2, 3)) / (A.sum(dim=(2, 3)) + self.eps))
        return weights
