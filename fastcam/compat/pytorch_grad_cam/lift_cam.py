"""LIFT-CAM under pytorch-grad-cam's conventions (fastcam only)."""
from __future__ import annotations

from ...methods import LiftCAM as _Method
from .base_cam import BaseCAM


class LiftCAM(BaseCAM):
    """LIFT-CAM (Jung & Oh, ICCV 2021): ``w_k = Σ_ij`` DeepLIFT contributions of the
    activation to the target score through the rest of the network (see
    :class:`fastcam.LiftCAM`). The model is split at the target layer with
    torch.fx, so no ``reshape_transform``; ``eigen_smooth`` applies."""

    method_class = _Method
    takes_reshape_transform = False
