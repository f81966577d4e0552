"""``pytorch_grad_cam.seg_eigen_cam``: Seg-Eigen-CAM (Chung & Ying 2025).

Not implemented by fastcam yet: ``SegEigenCAM`` is pytorch-grad-cam's own, handed out with a
warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["SegEigenCAM"]
__getattr__ = delegated(__name__, __all__)
