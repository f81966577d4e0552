"""Triton kernels of fastcam's ops (CUDA tensors; CPU tensors under TRITON_INTERPRET=1),
one module per op; ``_common`` holds what they share."""
from .adaptive_kde import adaptive_kde
from .cam_combine import cam_combine_backward, cam_combine_forward
from .mask_blend import mask_blend
from .rank_reveal import rank_reveal

__all__ = ["cam_combine_forward", "cam_combine_backward", "mask_blend", "rank_reveal",
           "adaptive_kde"]
