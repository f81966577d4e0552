"""XGradCAM with pytorch-grad-cam's interface (``pytorch_grad_cam.xgrad_cam.XGradCAM``)."""
from __future__ import annotations

from ...methods.xgradcam import XGradCAM as _Method
from .base_cam import BaseCAM


class XGradCAM(BaseCAM):
    """XGrad-CAM (Fu et al. 2020): ``w_k = Σ_ij A_kij g_kij / (Σ_ij A_kij + 1e-7)``, as pytorch-grad-cam."""

    method_class = _Method
