"""Grad-CAM (Selvaraju et al., ICCV 2017)."""
from __future__ import annotations

from torch import Tensor

from .base import BaseCAM, CallContext


class GradCAM(BaseCAM):
    """Grad-CAM: ``α_k = mean_ij ∂y_c/∂A_kij`` (paper eq. 1), map
    ``minmax(up(ReLU(Σ_k α_k A_k)))`` (eq. 2, then upsampled and scaled as
    pytorch-grad-cam and TorchCAM do). ``y_c`` is the target score (the raw logit
    for class-index targets). Cost: one forward, one backward to the target layer.
    """

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        return [g.mean(dim=(2, 3)) for g in ctx.gradients]
