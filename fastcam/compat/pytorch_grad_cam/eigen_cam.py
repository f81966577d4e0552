"""Eigen-CAM with pytorch-grad-cam's interface (``pytorch_grad_cam.eigen_cam.EigenCAM``)."""
from __future__ import annotations

from ...methods.eigencam import EigenCAM as _Method
from .base_cam import BaseCAM

__all__ = ["EigenCAM"]


class EigenCAM(BaseCAM):
    """Eigen-CAM (Muhammad & Yeasin 2020): per layer the first principal component
    of the centred activations, ReLU, min-max, resized (see
    :class:`fastcam.methods.eigencam.EigenCAM`); no gradient. One batched SVD on
    the device (pytorch-grad-cam: NumPy, one image at a time) whose sign is fixed
    so that the component correlates positively with the channel sum — theirs is
    whatever their LAPACK returns, so their map may be that of ``-p``.
    ``eigen_smooth`` changes nothing, as there."""

    method_class = _Method
    weighted = False
    projected = True
