"""FullGrad with pytorch-grad-cam's interface (``pytorch_grad_cam.fullgrad_cam.FullGrad``)."""
from __future__ import annotations

from ...methods.fullgrad import FullGrad as _Method
from .base_cam import BaseCAM

__all__ = ["FullGrad"]


class FullGrad(BaseCAM):
    """FullGrad (Srinivas & Fleuret 2019) as pytorch-grad-cam computes it: the
    per-channel scaled |input-gradient × input| plus, for every Conv2d/BatchNorm2d
    with a bias, the per-channel scaled |bias × output gradient| summed over
    channels, resized and summed, scaled to [0, 1]
    (:class:`fastcam.methods.fullgrad.FullGrad`). ``target_layers`` are ignored
    (a non-empty list warns, as there; ``[]`` is accepted). Not supported:
    ``reshape_transform`` and ``eigen_smooth`` (``ValueError``). Batched; no
    parameter ``.grad`` is written.
    """

    method_class = _Method
    weighted = False
    takes_reshape_transform = False
    needs_target_layers = False
