"""Triton kernels of fastcam's ops (CUDA tensors; CPU tensors under TRITON_INTERPRET=1)."""
from .cam_combine import cam_combine_backward, cam_combine_forward
from .adaptive_kde import adaptive_kde
from .masked_inputs import mask_blend, rank_reveal

__all__ = ["cam_combine_forward", "cam_combine_backward", "mask_blend", "rank_reveal",
           "adaptive_kde"]
