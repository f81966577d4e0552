"""ShapleyCAM with pytorch-grad-cam's interface (``pytorch_grad_cam.shapley_cam.ShapleyCAM``)."""
from __future__ import annotations

from ...methods.shapleycam import ShapleyCAM as _Method
from .base_cam import BaseCAM


class ShapleyCAM(BaseCAM):
    """ShapleyCAM (Cai 2025; not Shap-CAM): ``w_k = mean_ij (g − ½ H A)_kij`` with a
    Hessian-vector product, as pytorch-grad-cam; both backward passes stop at the
    target layers (theirs runs them to the input)."""

    method_class = _Method
