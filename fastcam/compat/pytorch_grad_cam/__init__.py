"""Drop-in replacement for pytorch-grad-cam (PyPI ``grad-cam``) backed by fastcam.

Change ``pytorch_grad_cam`` to ``fastcam.compat.pytorch_grad_cam`` in the
imports and keep the script: the same classes, arguments, targets and
utilities, the same maps (within 1e-4), computed batched on the model's device.
Besides GradCAM, GradCAMPlusPlus and ScoreCAM, fastcam's LiftCAM, ShapCAM,
OptiCAM and ADVISE are available under the same conventions.

Submodules: ``utils`` (``utils.model_targets``, ``utils.image``,
``utils.reshape_transforms``, ``utils.svd_on_activations``) and ``metrics``
(imported on first use).
"""
import importlib
import warnings

from . import utils
from .advise import ADVISE
from .base_cam import BaseCAM
from .grad_cam import GradCAM
from .grad_cam_plusplus import GradCAMPlusPlus
from .lift_cam import LiftCAM
from .opti_cam import OptiCAM
from .score_cam import ScoreCAM
from .shap_cam import ShapCAM

__all__ = ["BaseCAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "LiftCAM", "ShapCAM",
           "OptiCAM", "ADVISE", "utils"]


#: pytorch-grad-cam's other public names, which fastcam does not reimplement:
#: taken from the installed pytorch-grad-cam (with a warning) so that its
#: README's import line keeps working after the swap.
DELEGATED = frozenset({
    "HiResCAM", "XGradCAM", "LayerCAM", "EigenCAM", "EigenGradCAM", "GradCAMElementWise",
    "AblationCAM", "AblationLayer", "AblationLayerVit", "AblationLayerFasterRCNN", "FullGrad",
    "GuidedBackpropReLUModel", "RandomCAM", "KPCA_CAM", "FinerCAM", "ShapleyCAM", "FEM",
    "SegEigenCAM", "RefineCAM", "SESS", "ActivationsAndGradients", "DeepFeatureFactorization",
    "run_dff_on_image"})


def __getattr__(name: str):
    # ``pytorch_grad_cam.metrics`` is imported by theirs eagerly; ours on first use,
    # so the front-end works without it.
    if name == "metrics":
        return importlib.import_module(f"{__name__}.metrics")
    if name in DELEGATED:
        try:
            original = importlib.import_module("pytorch_grad_cam")
        except ImportError:
            raise ImportError(f"fastcam does not implement pytorch-grad-cam's {name}; install "
                              "grad-cam to use its own implementation") from None
        warnings.warn(f"fastcam does not implement {name}: this is pytorch-grad-cam's own class "
                      "(its speed, its conventions)", stacklevel=2)
        value = globals()[name] = getattr(original, name)   # warn once per name
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
