"""fastcam: fast, batched class activation maps for PyTorch CNN classifiers."""
from __future__ import annotations

__version__ = "0.1.0"

from . import models, ops
from .api import explain
from .backend import get_backend, set_backend, use_backend
from .methods import (ADVISE, CAM, METHODS, BaseCAM, CAMRecord, GradCAM, GradCAMPlusPlus, LiftCAM, OptiCAM,
                      ScoreCAM, ShapCAM, FakeCAM, XGradCAM, HiResCAM, GradCAMElementWise, LayerCAM,
                      ShapleyCAM, RandomCAM)
from .generate import generate

__all__ = [
    "explain", "CAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "OptiCAM", "LiftCAM", "ShapCAM", "ADVISE", "FakeCAM",
    "XGradCAM", "HiResCAM", "GradCAMElementWise", "LayerCAM", "ShapleyCAM", "RandomCAM",
    "BaseCAM", "CAMRecord", "METHODS",
    "models", "ops", "set_backend", "get_backend", "use_backend", "__version__", "generate",
]
