"""Grad-CAM++ (Chattopadhay et al., WACV 2018)."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import CallContext
from .torchcam_mode import TorchCAMMode


class GradCAMPlusPlus(TorchCAMMode):
    """Grad-CAM++ with the closed form of the paper's eq. 19 for the pixel weights,
    evaluated on the raw score's gradients g = ∂y_c/∂A as pytorch-grad-cam does:

        a_kij = g² / (2 g² + (Σ_ab A_kab) g³ + eps),  a = 0 where g = 0,
        α_k   = Σ_ij a_kij · ReLU(g_kij)               (eq. 7's ReLU),

    with eps = 1e-6 (pytorch-grad-cam's value, so maps agree with it).

    Modes (keyword ``mode``):
      - ``"pytorch-grad-cam"`` (default): the formula above.
      - ``"torchcam"``: TorchCAM 0.5.0's GradCAMpp weights as it computes them.
        Its code forms ``a = g²`` and divides ``a[g² > 0]`` in place by
        ``2 g² + Σ_ab g³_ab A_ab + 1e-8``; boolean indexing makes a copy, so the
        division never reaches ``a`` and the weights are ``α_k = Σ_ij g²_kij ·
        ReLU(g_kij)``. The map is ``up(normalize(ReLU(Σ_k α_k A_k)))`` with
        TorchCAM's normalisation (:mod:`fastcam.methods.torchcam_numerics`).
    """

    eps: float = 1e-6

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        weights = []
        for A, g in zip(ctx.activations, ctx.gradients):
            A = A.detach()
            g2 = g * g
            if self.mode == "torchcam":
                weights.append((g2 * torch.relu(g)).sum(dim=(2, 3)))
                continue
            g3 = g2 * g
            a = g2 / (2 * g2 + A.sum(dim=(2, 3), keepdim=True) * g3 + self.eps)
            a = torch.where(g != 0, a, 0)
            weights.append((a * torch.relu(g)).sum(dim=(2, 3)))
        return weights

