"""One module per method; :class:`BaseCAM` owns hooks, targets and batching."""
from .advise import ADVISE
from .base import BaseCAM, CAMRecord
from .cam import CAM
from .fakecam import FakeCAM
from .gradcam import GradCAM
from .gradcam_plusplus import GradCAMPlusPlus
from .liftcam import LiftCAM
from .opticam import OptiCAM
from .scorecam import ScoreCAM
from .shapcam import ShapCAM

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
}

__all__ = ["BaseCAM", "CAMRecord", "CAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "OptiCAM", "ShapCAM", "LiftCAM", "ADVISE", "FakeCAM", "METHODS"]
