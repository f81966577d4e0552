"""``pytorch_grad_cam.eigen_cam``: Eigen-CAM (Muhammad & Yeasin 2020).

Not implemented by fastcam yet: ``EigenCAM`` is pytorch-grad-cam's own, handed out with a
warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["EigenCAM"]
__getattr__ = delegated(__name__, __all__)
