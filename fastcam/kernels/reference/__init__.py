"""Eager-PyTorch definitions of fastcam's ops, one module per op: the oracle every
backend is tested against. Written for clarity, not speed; differentiable by
autograd. Each op's functions are re-exported here
(``reference.cam_combine``, ``reference.mask_blend``, ...)."""
from .adaptive_kde import adaptive_kde
from .cam_combine import cam_combine, cam_combine_backward, cam_combine_forward
from .mask_blend import mask_blend
from .rank_reveal import rank_reveal

__all__ = ["adaptive_kde", "cam_combine", "cam_combine_backward", "cam_combine_forward",
           "mask_blend", "rank_reveal"]
