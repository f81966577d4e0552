"""HiResCAM with pytorch-grad-cam's interface (``pytorch_grad_cam.hirescam.HiResCAM``)."""
from __future__ import annotations

from ...methods.elementwise import HiResCAM as _Method
from .base_cam import BaseCAM


class HiResCAM(BaseCAM):
    """HiResCAM (Draelos & Carin 2020): the map is ``Σ_k g_k ⊙ A_k`` (``eigen_smooth``:
    the first principal component of g ⊙ A), as pytorch-grad-cam. Its faithfulness
    guarantee does not hold with eigen_smooth (pytorch-grad-cam prints that; this
    class says it here)."""

    method_class = _Method
