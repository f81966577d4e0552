"""C++/OpenMP kernels (fastcam._C.cpu) for CPU tensors: the ``cpp`` backend, one
module per op, each op's functions re-exported here."""
from .adaptive_kde import adaptive_kde
from .cam_combine import cam_combine_backward, cam_combine_forward
from .mask_blend import mask_blend
from .rank_reveal import rank_reveal

__all__ = ["adaptive_kde", "cam_combine_backward", "cam_combine_forward", "mask_blend",
           "rank_reveal"]
