"""KPCA-CAM with pytorch-grad-cam's interface (``pytorch_grad_cam.kpca_cam.KPCA_CAM``)."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from torch import nn

from ...engine import Precision
from ...methods.kpcacam import KPCA_CAM as _Method
from ...methods.projection import check_kernel
from .base_cam import BaseCAM, ReshapeTransform

__all__ = ["KPCA_CAM"]


class KPCA_CAM(BaseCAM):  # noqa: N801 -- pytorch-grad-cam's name
    """KPCA-CAM: per layer the first kernel principal component of the centred
    activations (scikit-learn's ``KernelPCA(n_components=1, kernel, gamma)``, here
    batched on the device without scikit-learn; see
    :class:`fastcam.methods.kpcacam.KPCA_CAM`), ReLU, min-max, resized; no
    gradient. ``KPCA_CAM(model, target_layers, reshape_transform=None,
    kernel='sigmoid', gamma=None)`` as pytorch-grad-cam; ``kernel`` one of
    'linear', 'poly', 'rbf', 'sigmoid', 'cosine'. ``eigen_smooth`` changes
    nothing, as there."""

    method_class = _Method
    weighted = False
    projected = True

    def __init__(self, model: nn.Module, target_layers: Sequence[Union[nn.Module, str]],
                 reshape_transform: ReshapeTransform = None, kernel: str = "sigmoid",
                 gamma: Optional[float] = None, *, use_cuda: Optional[bool] = None,
                 precision: Precision = "fp32", **options: Any) -> None:
        super().__init__(model, target_layers, reshape_transform, use_cuda, precision=precision,
                         kernel=kernel, gamma=gamma, **options)

    @property
    def kernel(self) -> str:
        """The kernel (pytorch-grad-cam's attribute); settable."""
        return self.method.kernel

    @kernel.setter
    def kernel(self, value: str) -> None:
        check_kernel(value, self.method.gamma)
        self.method.kernel = value

    @property
    def gamma(self) -> Optional[float]:
        """The kernel coefficient, None for 1/K (pytorch-grad-cam's attribute); settable."""
        return self.method.gamma

    @gamma.setter
    def gamma(self, value: Optional[float]) -> None:
        check_kernel(self.method.kernel, value)
        self.method.gamma = value
