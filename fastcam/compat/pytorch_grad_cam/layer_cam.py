"""LayerCAM with pytorch-grad-cam's interface (``pytorch_grad_cam.layer_cam.LayerCAM``)."""
from __future__ import annotations

from ...methods.elementwise import LayerCAM as _Method
from .base_cam import BaseCAM


class LayerCAM(BaseCAM):
    """LayerCAM (Jiang et al. 2021): the map is ``Σ_k ReLU(g_k) ⊙ A_k``, as pytorch-grad-cam."""

    method_class = _Method
