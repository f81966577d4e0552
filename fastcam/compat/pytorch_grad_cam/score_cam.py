"""Score-CAM with pytorch-grad-cam's interface (``pytorch_grad_cam.ScoreCAM``)."""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from torch import nn

from ...engine import Precision
from ..numerics import PytorchGradCAMScoreCAM as _Method
from .base_cam import BaseCAM, ReshapeTransform, method_option


class ScoreCAM(BaseCAM):
    """Score-CAM (Wang et al. 2020) with pytorch-grad-cam's numerics: channel k's
    mask is its activation upsampled bilinearly (align_corners=True) and min-max
    scaled with +1e-8, it multiplies the input tensor as given, the target's
    score on each masked copy is taken raw and ``w = softmax_k(scores)``.

    ``batch_size`` (attribute, default 16 as in pytorch-grad-cam): masked copies
    per forward. The copies are built chunk by chunk on the device by a fused
    kernel (pytorch-grad-cam materialises all K copies of every image first) and
    the scores stay on the device (theirs: one ``.item()`` per copy); no progress bar.
    ``mode="default"`` or ``"official"`` (keyword) selects fastcam's native numerics
    (:class:`fastcam.compat.numerics.PytorchGradCAMScoreCAM`).
    """

    method_class = _Method

    def __init__(self, model: nn.Module, target_layers: Sequence[Union[nn.Module, str]],
                 reshape_transform: ReshapeTransform = None, use_cuda: Optional[bool] = None,
                 *, precision: Precision = "fp32", **options: Any) -> None:
        options.setdefault("batch_size", 16)
        super().__init__(model, target_layers, reshape_transform, use_cuda, precision=precision,
                         **options)

    batch_size = method_option("batch_size", int, lambda v: v >= 1, ">= 1",
                               "Masked copies per forward (pytorch-grad-cam's ``batch_size`` attribute).")
