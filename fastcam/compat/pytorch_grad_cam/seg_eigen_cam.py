"""Seg-Eigen-CAM with pytorch-grad-cam's interface (``pytorch_grad_cam.seg_eigen_cam.SegEigenCAM``)."""
from __future__ import annotations

from ...methods.segeigencam import SegEigenCAM as _Method
from .base_cam import BaseCAM

__all__ = ["SegEigenCAM"]


class SegEigenCAM(BaseCAM):
    """Seg-Eigen-CAM (Chung & Ying 2025): the first principal component of
    ``|∂y/∂A| ⊙ A``, signed so that ``|max| ≥ |min|`` (Eq. 10–13; see
    :class:`fastcam.methods.segeigencam.SegEigenCAM`): pytorch-grad-cam's maps on
    every library. ``eigen_smooth`` changes nothing, as there."""

    method_class = _Method
    weighted = False
    projected = True
