"""The ``mode`` option of the gradient methods that also offer TorchCAM's numerics."""
from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from ..engine import Precision
from ..inputs import Normalize
from ..network.layers import LayerSpec
from . import torchcam_numerics as tc
from .base import BaseCAM


class TorchCAMMode(BaseCAM):
    """A method with ``mode="pytorch-grad-cam"`` (default: pytorch-grad-cam 1.5.7's
    numerics) or ``mode="torchcam"`` (TorchCAM 0.5.0's): in ``"torchcam"`` mode a
    layer's map is ``up(normalize(ReLU(Σ_k w_k A_k)))`` with TorchCAM's
    normalisation at the layer's resolution (:func:`.torchcam_numerics.combine`);
    the method's own weights read ``self.mode`` for what else differs."""

    modes: ClassVar[tuple[str, ...]] = tc.MODES

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 mode: tc.Mode = "pytorch-grad-cam", normalize: Normalize = None,
                 precision: Precision = "fp32", compile: bool = False):
        super().__init__(model, target_layers, normalize=normalize, precision=precision,
                         compile=compile)
        self.mode = tc.check_mode(mode)

    def combine(self, A: Tensor, w: Tensor, size: tuple[int, int]) -> Tensor:
        if self.mode == "torchcam":
            return tc.combine(A, w, size)
        return super().combine(A, w, size)
