"""ADVISE under pytorch-grad-cam's conventions (fastcam only)."""
from __future__ import annotations

from ...methods import ADVISE as _Method
from .base_cam import BaseCAM


class ADVISE(BaseCAM):
    """ADVISE (Dehshibi et al. 2022): Grad-CAMs over channel groups of equal
    density-peak count, the best by the AVX score (see :class:`fastcam.ADVISE`).
    One target layer; targets must be classes (``ClassifierOutputTarget`` or
    None), since ADVISE contrasts the class with the runner-up; the map is a
    selected candidate, so no ``eigen_smooth``."""

    method_class = _Method
    weighted = False
