"""``pytorch_grad_cam.fem``: FEM, the Feature Explanation Method (Fuad et al. 2020)."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from torch import nn

from ...methods.fem import FEM as _Method
from .base_cam import BaseCAM, ReshapeTransform


class FEM(BaseCAM):
    """FEM with pytorch-grad-cam's interface: ``FEM(model, target_layers, reshape_transform=None, k=2)``.
    Channel weight = fraction of the channel's positions above ``μ + k·σ`` (k-sigma rule),
    map ``ReLU(Σ_k w_k A_k)`` scaled and resized, as pytorch-grad-cam; gradient-free.
    Only 2-D images (B, K, h, w activations); grad-cam also takes 3-D volumes."""

    method_class = _Method

    def __init__(self, model: nn.Module, target_layers: Sequence[Union[nn.Module, str]],
                 reshape_transform: ReshapeTransform = None, k: float = 2,
                 use_cuda: Optional[bool] = None, **options: Any) -> None:
        super().__init__(model, target_layers, reshape_transform, use_cuda, k=k, **options)
        self.k = k
