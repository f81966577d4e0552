"""RandomCAM with pytorch-grad-cam's interface (``pytorch_grad_cam.random_cam.RandomCAM``)."""
from __future__ import annotations

from ...methods.randomcam import RandomCAM as _Method
from .base_cam import BaseCAM


class RandomCAM(BaseCAM):
    """Random channel weights uniform in [-1, 1) per image and channel, as
    pytorch-grad-cam. The weights come from torch's generator (seed with
    ``torch.manual_seed``, or pass ``seed=``), not NumPy's: the maps are
    pytorch-grad-cam's for the same weights, not for the same NumPy seed."""

    method_class = _Method
