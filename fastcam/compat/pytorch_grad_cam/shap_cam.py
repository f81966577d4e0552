"""Shap-CAM under pytorch-grad-cam's conventions (fastcam only)."""
from __future__ import annotations

from ...methods import ShapCAM as _Method
from .base_cam import BaseCAM


class ShapCAM(BaseCAM):
    """Shap-CAM (Zheng et al., ECCV 2022): Shapley values of the target layer's
    spatial positions by permutation sampling (see :class:`fastcam.ShapCAM`;
    ``permutations=``, ``worth=`` … as keywords). One target layer; the model is
    split there (no ``reshape_transform``); the map is not Σ_k w_k A_k, so no
    ``eigen_smooth``. ``ClassifierOutputTarget(c)`` selects the class, whose worth
    is the method's (softmax probability by default, as in the paper)."""

    method_class = _Method
    weighted = False
    takes_reshape_transform = False
