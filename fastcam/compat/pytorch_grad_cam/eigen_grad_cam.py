"""Eigen-Grad-CAM with pytorch-grad-cam's interface (``pytorch_grad_cam.eigen_grad_cam.EigenGradCAM``)."""
from __future__ import annotations

from ...methods.eigencam import EigenGradCAM as _Method
from .base_cam import BaseCAM

__all__ = ["EigenGradCAM"]


class EigenGradCAM(BaseCAM):
    """Eigen-Grad-CAM: Eigen-CAM of ``∂y/∂A ⊙ A`` (see
    :class:`fastcam.methods.eigencam.EigenGradCAM`), with the sign of
    :class:`~fastcam.compat.pytorch_grad_cam.eigen_cam.EigenCAM`. ``eigen_smooth``
    changes nothing, as in pytorch-grad-cam."""

    method_class = _Method
    weighted = False
    projected = True
