"""CUDA kernels (fastcam._C.cuda, built with nvcc) for CUDA tensors: the ``cuda``
backend, one module per op with the interface of :mod:`fastcam.kernels.cpp`, each
op's functions re-exported here. The kernels are launched on the current stream
of the tensors' device, asynchronously, like any torch op."""
from .adaptive_kde import adaptive_kde
from .cam_combine import cam_combine_backward, cam_combine_forward
from .mask_blend import mask_blend
from .rank_reveal import rank_reveal

__all__ = ["adaptive_kde", "cam_combine_backward", "cam_combine_forward", "mask_blend",
           "rank_reveal"]
