"""Confidence change when the image is multiplied by its map (pytorch-grad-cam 1.5.7's
``metrics.cam_mult_image``): the "Average Drop" / "Increase in Confidence" metrics of
Chattopadhay et al. (Grad-CAM++, WACV 2018), per image, unaveraged.

``CamMultImageConfidenceChange()(x, cams, targets, model)`` returns
``t_i(model(x ⊙ S)_i) − t_i(model(x)_i)`` (float32, (B,)); the product is with the
tensor the model sees (after normalisation), as grad-cam does.
``DropInConfidence`` returns ``max(−change, 0)``, ``IncreaseInConfidence`` returns
``1.0`` where the change is positive, else ``0.0``.

Better than grad-cam: ``return_visualization=True`` works for all three (grad-cam's
``DropInConfidence``/``IncreaseInConfidence`` negate or compare the returned tuple and
raise ``TypeError``); here they return ``(scores, x ⊙ S)``. See
:mod:`.perturbation_confidence` for batching and input checks.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from torch import Tensor

from .perturbation_confidence import PerturbationConfidenceMetric


def multiply_tensor_with_cam(input_tensor: Tensor, cam: Tensor) -> Tensor:
    """``x ⊙ S`` for a batch (B,C,H,W) × (B,H,W), or one image (C,H,W) × (H,W)."""
    return input_tensor * cam.unsqueeze(-3).to(input_tensor.dtype)


class CamMultImageConfidenceChange(PerturbationConfidenceMetric):
    """Score change after multiplying each image by its map; ``batch_size`` bounds the
    images per model forward (default: the whole batch)."""

    def __init__(self, batch_size: Optional[int] = None):
        super().__init__(multiply_tensor_with_cam, batch_size=batch_size)


class DropInConfidence(CamMultImageConfidenceChange):
    """``max(0, before − after)`` per image (grad-cam: ``np.maximum(-change, 0)``)."""

    def _finish(self, scores: np.ndarray) -> np.ndarray:
        return np.maximum(-scores, 0)


class IncreaseInConfidence(CamMultImageConfidenceChange):
    """``1.0`` where the score increased, else ``0.0`` (grad-cam: ``np.float32(change > 0)``)."""

    def _finish(self, scores: np.ndarray) -> np.ndarray:
        return np.float32(scores > 0)
