"""Seg-Eigen-CAM (Chung & Ying, Applied Sciences 2025, 15(13) 7562)."""
from __future__ import annotations

from torch import Tensor

from ..inputs import at_least_fp32
from .base import BaseCAM, CallContext
from .projection import projection_maps, sign_corrected_projection


class SegEigenCAM(BaseCAM):
    """Seg-Eigen-CAM: the first principal component of ``|g| ⊙ A`` (the paper's
    Eq. 10: absolute gradients as per-position weights, g = ∂y_c/∂A), its sign
    chosen so that ``|max| ≥ |min|`` (Eq. 13), then ``minmax(up(ReLU(p)))`` per
    layer, several layers averaged and rescaled (pytorch-grad-cam 1.5.7's
    ``SegEigenCAM``). The sign rule does not depend on the SVD's, so the maps
    are pytorch-grad-cam's on every library.
    Cost: one forward, one backward to the target layer, one batched SVD.
    """

    def maps(self, ctx: CallContext) -> Tensor:
        grads = ctx.gradients
        return projection_maps(ctx, [sign_corrected_projection(at_least_fp32(g).abs() * at_least_fp32(A.detach()))
                                     for A, g in zip(ctx.activations, grads)],
                               "SegEigenCAM's principal component")
