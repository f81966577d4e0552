"""One module per method; :class:`BaseCAM` owns hooks, targets and batching."""
from .ablationcam import AblationCAM
from .advise import ADVISE
from .base import BaseCAM, CAMRecord
from .cam import CAM
from .eigencam import EigenCAM, EigenGradCAM
from .elementwise import GradCAMElementWise, HiResCAM, LayerCAM
from .fakecam import FakeCAM
from .fem import FEM
from .finercam import FinerCAM
from .fullgrad import FullGrad
from .gradcam import GradCAM
from .gradcam_plusplus import GradCAMPlusPlus
from .iscam import ISCAM
from .kpcacam import KPCA_CAM
from .legrad import LeGrad
from .liftcam import LiftCAM
from .opticam import OptiCAM
from .randomcam import RandomCAM
from .refinecam import RefineCAM
from .scorecam import ScoreCAM
from .segeigencam import SegEigenCAM
from .shapcam import ShapCAM
from .shapleycam import ShapleyCAM
from .smoothgradcampp import SmoothGradCAMpp
from .sscam import SSCAM
from .xgradcam import XGradCAM

#: names accepted by fastcam.explain(method=...)
METHODS = {
    "cam": CAM,
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "gradcampp": GradCAMPlusPlus,
    "scorecam": ScoreCAM,
    "liftcam": LiftCAM,
    "opticam": OptiCAM,
    "shapcam": ShapCAM,
    "advise": ADVISE,
    "fakecam": FakeCAM,
    "xgradcam": XGradCAM,
    "hirescam": HiResCAM,
    "gradcam-elementwise": GradCAMElementWise,
    "layercam": LayerCAM,
    "shapleycam": ShapleyCAM,
    "randomcam": RandomCAM,
    "legrad": LeGrad,
    "sscam": SSCAM,
    "iscam": ISCAM,
    "smoothgradcampp": SmoothGradCAMpp,
    "eigencam": EigenCAM,
    "eigengradcam": EigenGradCAM,
    "kpcacam": KPCA_CAM,
    "segeigencam": SegEigenCAM,
    "fullgrad": FullGrad,
    "finercam": FinerCAM,
    "refinecam": RefineCAM,
    "fem": FEM,
    "ablationcam": AblationCAM,
}

#: the other methods of pytorch-grad-cam and TorchCAM, natively (not in the demo's
#: or the evaluation's default method lists, which hold the papers' methods and baselines)
PEER_METHODS = (
    "xgradcam",
    "hirescam",
    "gradcam-elementwise",
    "layercam",
    "shapleycam",
    "randomcam",
    "legrad",
    "sscam",
    "iscam",
    "smoothgradcampp",
    "eigencam",
    "eigengradcam",
    "kpcacam",
    "segeigencam",
    "fullgrad",
    "finercam",
    "refinecam",
    "fem",
    "ablationcam",
)

__all__ = [
    "BaseCAM", "CAMRecord", "METHODS", "PEER_METHODS",
    "CAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "OptiCAM", "ShapCAM", "LiftCAM", "ADVISE", "FakeCAM",
    "XGradCAM",
    "HiResCAM",
    "GradCAMElementWise",
    "LayerCAM",
    "ShapleyCAM",
    "RandomCAM",
    "LeGrad",
    "SSCAM",
    "ISCAM",
    "SmoothGradCAMpp",
    "EigenCAM",
    "EigenGradCAM",
    "KPCA_CAM",
    "SegEigenCAM",
    "FullGrad",
    "FinerCAM",
    "RefineCAM",
    "FEM",
    "AblationCAM",
]
