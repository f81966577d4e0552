"""Refine-CAM with pytorch-grad-cam's interface (``pytorch_grad_cam.refine_cam.RefineCAM``)."""
from __future__ import annotations

from typing import Any, Callable, List, Optional

import numpy as np
import torch
from torch import nn

from ...engine import Precision
from ...methods.refinecam import RefineCAM as _Method
from ._base_method import front_end_class
from .base_cam import BaseCAM, ReshapeTransform
from .grad_cam_plusplus import GradCAMPlusPlus

__all__ = ["RefineCAM"]


class RefineCAM(BaseCAM):
    """Refine-CAM as pytorch-grad-cam 1.5.7: ``RefineCAM(model, target_layers,
    reshape_transform=None, base_method=GradCAMPlusPlus, **kwargs)``, called as
    ``cam(input_tensor, targets=None, eigen_smooth=False)``: the base method's
    map at every target layer, multiplied and scaled to [0, 1]
    (:class:`fastcam.methods.refinecam.RefineCAM`), with one forward and one
    backward for all layers (theirs: one per layer). ``base_method``: our
    front-end class or pytorch-grad-cam's (mapped to ours by name); ``kwargs``
    go to the base method. ``eigen_smooth`` is not supported (``ValueError``).
    """

    method_class = _Method
    weighted = False

    def __init__(self, model: nn.Module, target_layers: List[nn.Module],
                 reshape_transform: ReshapeTransform = None, base_method: Any = GradCAMPlusPlus,
                 *, precision: Precision = "fp32", **kwargs: Any) -> None:
        base = front_end_class(base_method, GradCAMPlusPlus, "RefineCAM")
        self.base_method = base
        super().__init__(model, target_layers, reshape_transform, precision=precision,
                         base_method=base.method_class, **kwargs)

    def __call__(self, input_tensor: torch.Tensor, targets: Optional[List[Callable]] = None,
                 eigen_smooth: bool = False) -> np.ndarray:
        return super().__call__(input_tensor, targets, aug_smooth=False, eigen_smooth=eigen_smooth)

    def forward(self, input_tensor: torch.Tensor, targets: Optional[List[Callable]] = None,
                eigen_smooth: bool = False) -> np.ndarray:
        return self(input_tensor, targets, eigen_smooth)
