"""GradCAMElementWise with pytorch-grad-cam's interface (``pytorch_grad_cam.grad_cam_elementwise.GradCAMElementWise``)."""
from __future__ import annotations

from ...methods.elementwise import GradCAMElementWise as _Method
from .base_cam import BaseCAM


class GradCAMElementWise(BaseCAM):
    """Grad-CAM element-wise: the map is ``Σ_k ReLU(g_k ⊙ A_k)``, as pytorch-grad-cam."""

    method_class = _Method
