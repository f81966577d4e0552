"""Grad-CAM++ with pytorch-grad-cam's interface (``pytorch_grad_cam.GradCAMPlusPlus``)."""
from __future__ import annotations

from ...methods import GradCAMPlusPlus as _Method
from .base_cam import BaseCAM


class GradCAMPlusPlus(BaseCAM):
    """Grad-CAM++ (Chattopadhay et al. 2018), the closed form of the paper's eq. 19
    on the raw score's gradients with eps = 1e-6, as pytorch-grad-cam:
    ``a = g² / (2g² + Σ_ij A · g³ + eps)`` (0 where g = 0), ``w_k = Σ_ij a·ReLU(g)``."""

    method_class = _Method
