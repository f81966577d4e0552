"""One module per method; :class:`BaseCAM` owns hooks, targets and batching."""
from .base import BaseCAM, CAMRecord
from .cam import CAM
from .gradcam import GradCAM
from .gradcam_plusplus import GradCAMPlusPlus
from .opticam import OptiCAM
from .scorecam import ScoreCAM

#: names accepted by fastcam.explain(method=...)
METHODS = {
    "cam": CAM,
    "gradcam": GradCAM,
    "gradcam++": GradCAMPlusPlus,
    "gradcampp": GradCAMPlusPlus,
    "scorecam": ScoreCAM,
    "opticam": OptiCAM,
}

__all__ = ["BaseCAM", "CAMRecord", "CAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "OptiCAM", "METHODS"]
