"""The kernel-backed tensor ops the methods are written in; each picks its kernel
by device (see fastcam.backend). The engines that run a model on perturbed
copies built by these ops live in :mod:`fastcam.perturbation`."""
from ._inputs import check_index
from .adaptive_kde import adaptive_kde
from .cam_combine import cam_combine
from .mask_blend import mask_blend
from .rank_reveal import rank_reveal

__all__ = ["adaptive_kde", "cam_combine", "check_index", "mask_blend", "rank_reveal"]
