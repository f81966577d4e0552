"""The element-wise gradient CAMs: HiResCAM, Grad-CAM element-wise and LayerCAM.

Each map is ``minmax(up(ReLU(Σ_k T_k)))`` of per-position terms T built from the
activation A and the gradient g = ∂y_c/∂A of the target score (one forward, one
backward to the target layer); they differ only in T.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import BaseCAM, CallContext


class HiResCAM(BaseCAM):
    """HiResCAM (Draelos & Carin, 2020): ``T = g ⊙ A`` (the paper's eq. 4: the map is
    the element-wise product summed over channels, no spatial averaging of g), so
    on a global-average-pool + linear head, Σ_k T_k at a position is exactly that
    position's share of the logit (less the bias)."""

    def weighted_activations(self, ctx: CallContext) -> list[Tensor]:
        return [g * A.detach() for A, g in zip(ctx.activations, ctx.gradients)]


class GradCAMElementWise(BaseCAM):
    """Grad-CAM element-wise (pytorch-grad-cam's variant): ``T = ReLU(g ⊙ A)``, each
    position's product clipped before the channel sum."""

    def weighted_activations(self, ctx: CallContext) -> list[Tensor]:
        return [torch.relu(g * A.detach())
                for A, g in zip(ctx.activations, ctx.gradients)]


class LayerCAM(BaseCAM):
    """LayerCAM (Jiang et al., TIP 2021): ``T = ReLU(g) ⊙ A`` (paper eq. 5–6: positive
    gradients as per-position weights). Several target layers are averaged and
    rescaled (pytorch-grad-cam's convention; the paper fuses layers after its
    tanh scaling, which fastcam does not apply). TorchCAM 0.5.0's numerics
    (its normalisation, its ``tanh(2·cam)`` fusion):
    :class:`fastcam.compat.numerics.TorchCAMLayerCAM` and
    :func:`fastcam.compat.numerics.fuse_cams`."""

    def weighted_activations(self, ctx: CallContext) -> list[Tensor]:
        return [torch.relu(g) * A.detach()
                for A, g in zip(ctx.activations, ctx.gradients)]
