"""TorchCAM 0.5's ``torchcam.methods`` on fastcam's methods: the same classes and calls."""
from .activation import CAM, ISCAM, SSCAM, ScoreCAM
from .core import OutputTarget
from .gradient import GradCAM, GradCAMpp, LayerCAM, SmoothGradCAMpp, XGradCAM
from .legrad import LeGrad
from .wrappers import FinerCAM, RefineCAM

__all__ = ["CAM", "ScoreCAM", "SSCAM", "ISCAM", "GradCAM", "GradCAMpp", "SmoothGradCAMpp", "XGradCAM",
           "LayerCAM", "LeGrad", "RefineCAM", "FinerCAM", "OutputTarget"]
