"""Eigen-CAM (Muhammad & Yeasin, IJCNN 2020) and Eigen-Grad-CAM (pytorch-grad-cam's variant).

Each map is the first principal component of a per-position (B, K, h, w)
quantity of the target layer, positions as samples
(:func:`~fastcam.methods.projection.principal_projection`), then
``minmax(up(ReLU(p)))`` per layer, several layers averaged and rescaled
(pytorch-grad-cam's combination). The SVD's arbitrary sign is fixed so that
the component correlates positively with the channel sum of that quantity
(see :mod:`fastcam.methods.projection`); pytorch-grad-cam's map is this one or,
where its LAPACK returns ``-v``, the map of ``-p``.
"""
from __future__ import annotations

from torch import Tensor

from ..inputs import at_least_fp32
from .base import BaseCAM, CallContext
from .projection import principal_projection, projection_maps


class EigenCAM(BaseCAM):
    """Eigen-CAM: the projection of the centred activation ``A`` on its first right
    singular vector (the paper's Eq. 5–6: ``L = A V₁``; pytorch-grad-cam centres
    each channel over the positions first, as here). Class-agnostic: no gradient,
    the targets only choose the scores recorded. Cost: one forward pass and one
    batched SVD of (h·w, K) per image and layer.
    """

    capture = "forward"

    def maps(self, ctx: CallContext) -> Tensor:
        return projection_maps(ctx, [principal_projection(at_least_fp32(A.detach())) for A in ctx.activations],
                               "EigenCAM's principal component")


class EigenGradCAM(BaseCAM):
    """Eigen-Grad-CAM (pytorch-grad-cam's ``EigenGradCAM``): Eigen-CAM of
    ``g ⊙ A`` with g = ∂y_c/∂A, so the component is class-discriminative.
    Cost: one forward, one backward to the target layer, one batched SVD."""

    def maps(self, ctx: CallContext) -> Tensor:
        grads = ctx.gradients
        return projection_maps(ctx, [principal_projection(at_least_fp32(g) * at_least_fp32(A.detach()))
                                     for A, g in zip(ctx.activations, grads)],
                               "EigenGradCAM's principal component")
