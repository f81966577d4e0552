"""Opti-CAM under pytorch-grad-cam's conventions (fastcam only)."""
from __future__ import annotations

from ...methods import OptiCAM as _Method
from .base_cam import BaseCAM


class OptiCAM(BaseCAM):
    """Opti-CAM (Zhang et al., CVIU 2024): channel weights ``softmax(u)`` optimised
    per image to maximise the target's score on the masked input (see
    :class:`fastcam.OptiCAM`; ``max_iter=``, ``normalize=`` … as keywords). Without
    ``normalize`` the mask multiplies the input tensor as given. One target layer;
    the map is the optimised mask, so no ``eigen_smooth``."""

    method_class = _Method
    weighted = False
