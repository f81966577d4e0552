"""ShapleyCAM (Cai, 2025): channel weights from the gradient and a Hessian-vector product.

Not Shap-CAM (:class:`fastcam.ShapCAM`, Zheng et al. 2022, Monte-Carlo Shapley
values of spatial positions): ShapleyCAM reads CAM weights as a second-order
Taylor estimate of each channel's Shapley value.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..inputs import check_finite
from .base import BaseCAM, CallContext


class ShapleyCAM(BaseCAM):
    """ShapleyCAM: ``w_k = mean_ij (g − ½ H A)_kij`` with ``g = ∂y_c/∂A`` and ``H A`` the
    Hessian of ``y_c`` w.r.t. A applied to A (arXiv 2501.06261, eq. 11; pytorch-grad-cam's
    ShapleyCAM computes the same product by differentiating g·A through the graph);
    map ``minmax(up(ReLU(Σ_k w_k A_k)))``. Where the tail from the layer to the score
    is piecewise linear (ReLU, pooling, linear layers and a logit target) H A is 0
    and the weights are Grad-CAM's; a softmax-probability target makes it count.
    Cost: one forward, a backward with graph to the target layer, and a second
    backward for the Hessian-vector product (both stop at the target layers).
    """

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        with torch.enable_grad():
            grads = torch.autograd.grad(ctx.scores.sum(), ctx.activations, create_graph=True)
            weights = []
            for A, g in zip(ctx.activations, grads):
                if g.requires_grad:
                    (hvp,) = torch.autograd.grad(g, A, grad_outputs=A.detach(), retain_graph=True,
                                                 allow_unused=True)
                else:
                    hvp = None      # g does not depend on A: the Hessian is 0
                g = g.detach()
                check_finite(g, "the gradient of the target scores w.r.t. the activations")
                if hvp is not None:
                    check_finite(hvp, "the Hessian-vector product of the target scores")
                    g = g - 0.5 * hvp
                weights.append(g.mean(dim=(2, 3)))
        return weights
