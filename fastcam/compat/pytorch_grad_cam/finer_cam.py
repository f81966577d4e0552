"""Finer-CAM with pytorch-grad-cam's interface (``pytorch_grad_cam.finer_cam.FinerCAM``)."""
from __future__ import annotations

from typing import Any, Callable, List, Optional

import numpy as np
import torch
from torch import nn

from ...engine import Precision
from ...methods.finercam import FinerCAM as _Method
from . import _maps
from ._base_method import front_end_class
from .base_cam import ReshapeTransform
from .grad_cam import GradCAM

__all__ = ["FinerCAM"]

#: pytorch-grad-cam's DEFAULT_COMPARISON_CATEGORIES
DEFAULT_COMPARISON_CATEGORIES = (1, 2, 3)


class FinerCAM:
    """Finer-CAM as pytorch-grad-cam 1.5.7: ``FinerCAM(model, target_layers,
    reshape_transform=None, base_method=GradCAM)``, called as
    ``cam(input_tensor, targets=None, eigen_smooth=False, alpha=1,
    comparison_categories=None, target_idx=None)``.

    With ``targets=None`` each image's target class (``target_idx``, or the
    predicted class) is contrasted with the classes at the ranks
    ``comparison_categories`` (default 1, 2, 3) of the order by logit distance:
    the base method explains ``Σ_t p_t (y_c − α y_t) / (Σ_t p_t + 1e-9)``
    (pytorch-grad-cam's ``FinerWeightedTarget``), batched
    (:class:`fastcam.methods.finercam.FinerCAM`). With targets given, the base
    method explains those targets, as there. ``base_method``: our front-end
    class or pytorch-grad-cam's (mapped to ours by name); ``base_cam`` is the
    base front-end. ``eigen_smooth`` needs a base method with channel weights.
    """

    def __init__(self, model: nn.Module, target_layers: List[nn.Module],
                 reshape_transform: ReshapeTransform = None, base_method: Any = GradCAM,
                 *, precision: Precision = "fp32", **options: Any) -> None:
        base = front_end_class(base_method, GradCAM, "FinerCAM")
        self.base_cam = base(model, target_layers, reshape_transform, precision=precision,
                             **options)
        self.model = model
        self.target_layers = self.base_cam.target_layers
        self.reshape_transform = reshape_transform
        self.precision = precision
        self._options = options
        self.outputs: Optional[torch.Tensor] = None

    def __enter__(self) -> "FinerCAM":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False        # never swallow an error

    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        return self.forward(*args, **kwargs)

    def forward(self, input_tensor: torch.Tensor, targets: Optional[List[Callable]] = None,
                eigen_smooth: bool = False, alpha: float = 1,
                comparison_categories: Optional[List[int]] = None,
                target_idx: Optional[int] = None) -> np.ndarray:
        if targets is not None:
            maps = self.base_cam(input_tensor, targets, eigen_smooth=eigen_smooth)
            self.outputs = self.base_cam.outputs
            return maps
        x = self.base_cam._to_model_device(input_tensor)
        ranks = DEFAULT_COMPARISON_CATEGORIES if comparison_categories is None else comparison_categories
        options = dict(self._options)
        if self.precision != "fp32":
            options["precision"] = self.precision
        method = _Method(self.model, self.target_layers, base_method=self.base_cam.method_class,
                         alpha=alpha, comparison_categories=ranks, **options)
        method.reshape_transform = self.reshape_transform
        maps = method(x, target_idx)
        record = method.last
        if eigen_smooth:
            if not record.weights:
                raise ValueError(f"eigen_smooth needs a base method with channel weights; "
                                 f"{type(self.base_cam).__name__} has none")
            maps = _maps.combine_layers(record.activations, record.weights, tuple(x.shape[-2:]),
                                        eigen_smooth=True)
        self.outputs = record.logits
        return maps.detach().float().cpu().numpy()

    def __repr__(self) -> str:
        return (f"FinerCAM(base_method={type(self.base_cam).__name__}, "
                f"target_layers={self.target_layers})")
