"""Grad-CAM++ (Chattopadhay et al., WACV 2018)."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import BaseCAM, CallContext


class GradCAMPlusPlus(BaseCAM):
    """Grad-CAM++ with the closed form of the paper's eq. 19 for the pixel weights,
    evaluated on the raw score's gradients g = ∂y_c/∂A as pytorch-grad-cam does:

        a_kij = g² / (2 g² + (Σ_ab A_kab) g³ + eps),  a = 0 where g = 0,
        α_k   = Σ_ij a_kij · ReLU(g_kij)               (eq. 7's ReLU),

    with eps = 1e-6 (pytorch-grad-cam's value, so maps agree with it).
    TorchCAM 0.5.0's numerics: :class:`fastcam.compat.numerics.TorchCAMGradCAMPlusPlus`.
    """

    eps: float = 1e-6

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        weights = []
        for A, g in zip(ctx.activations, ctx.gradients):
            A = A.detach()
            g2 = g * g
            g3 = g2 * g
            a = g2 / (2 * g2 + A.sum(dim=(2, 3), keepdim=True) * g3 + self.eps)
            a = torch.where(g != 0, a, 0)
            weights.append((a * torch.relu(g)).sum(dim=(2, 3)))
        return weights

