"""Drop-in replacement for pytorch-grad-cam (PyPI ``grad-cam``) backed by fastcam.

Change ``pytorch_grad_cam`` to ``fastcam.compat.pytorch_grad_cam`` in the
imports and keep the script: the same classes, arguments, targets and
utilities, the same maps (within 1e-4), computed batched on the model's device.
Every method of grad-cam 1.5.7 is fastcam's own (GradCAM, GradCAMPlusPlus,
ScoreCAM, AblationCAM, XGradCAM, HiResCAM, GradCAMElementWise, LayerCAM,
ShapleyCAM, RandomCAM, EigenCAM, EigenGradCAM, KPCA_CAM, SegEigenCAM, FullGrad,
FinerCAM, RefineCAM, FEM, SESS), as are its tools (AblationLayer, AblationLayerVit, guided
backprop, ActivationsAndGradients, deep feature factorization, the metrics);
fastcam's LiftCAM, ShapCAM, OptiCAM and ADVISE are available under the same
conventions.

Every public module of grad-cam 1.5.7 has its counterpart here (``utils.image``,
``utils.find_layers``, ``metrics.road``, ``eigen_cam``, ``ablation_layer``, ...;
imported on first use). One name fastcam does not implement, the ablation
layer for Faster R-CNN (``AblationLayerFasterRCNN``: it ablates a detector's
dict of feature-pyramid levels), is handed out from the installed grad-cam,
with a warning (:mod:`._delegate`).
"""
from . import utils
from ._delegate import delegated
from .ablation_cam import AblationCAM
from .ablation_layer import AblationLayer, AblationLayerVit
from .activations_and_gradients import ActivationsAndGradients
from .advise import ADVISE
from .base_cam import BaseCAM
from .finer_cam import FinerCAM
from .fullgrad_cam import FullGrad
from .eigen_cam import EigenCAM
from .eigen_grad_cam import EigenGradCAM
from .feature_factorization.deep_feature_factorization import DeepFeatureFactorization, run_dff_on_image
from .fem import FEM
from .grad_cam import GradCAM
from .grad_cam_plusplus import GradCAMPlusPlus
from .guided_backprop import GuidedBackpropReLUModel
from .lift_cam import LiftCAM
from .opti_cam import OptiCAM
from .score_cam import ScoreCAM
from .shap_cam import ShapCAM
from .grad_cam_elementwise import GradCAMElementWise
from .hirescam import HiResCAM
from .kpca_cam import KPCA_CAM
from .layer_cam import LayerCAM
from .random_cam import RandomCAM
from .refine_cam import RefineCAM
from .seg_eigen_cam import SegEigenCAM
from .sess import SESS
from .shapley_cam import ShapleyCAM
from .xgrad_cam import XGradCAM

__all__ = ["BaseCAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "LiftCAM", "ShapCAM",
           "OptiCAM", "ADVISE", "XGradCAM", "HiResCAM", "GradCAMElementWise", "LayerCAM",
           "ShapleyCAM", "RandomCAM", "EigenCAM", "EigenGradCAM", "KPCA_CAM", "SegEigenCAM",
           "FullGrad", "FinerCAM", "RefineCAM", "FEM", "SESS", "GuidedBackpropReLUModel",
           "ActivationsAndGradients", "DeepFeatureFactorization", "run_dff_on_image", "AblationCAM",
           "AblationLayer", "AblationLayerVit", "utils"]


#: pytorch-grad-cam's other public names, which fastcam does not reimplement:
#: taken from the installed pytorch-grad-cam (with a warning, see ``_delegate``)
#: so that its README's import line keeps working after the swap.
DELEGATED = frozenset({"AblationLayerFasterRCNN"})


#: our submodules (``metrics``, ``eigen_cam``, ...) are imported on first attribute access
__getattr__ = delegated(__name__, DELEGATED)
