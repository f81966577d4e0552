"""Grad-CAM with pytorch-grad-cam's interface (``pytorch_grad_cam.GradCAM``)."""
from __future__ import annotations

from ...methods import GradCAM as _Method
from .base_cam import BaseCAM


class GradCAM(BaseCAM):
    """Grad-CAM (Selvaraju et al. 2017): ``w_k = mean_ij ∂y/∂A_kij`` with ``y`` the
    target's score, as pytorch-grad-cam. One forward and one backward that stops
    at the target layers (theirs runs the backward through the whole network)."""

    method_class = _Method
