"""``pytorch_grad_cam.eigen_grad_cam``: Eigen-Grad-CAM.

Not implemented by fastcam yet: ``EigenGradCAM`` is pytorch-grad-cam's own, handed out with
a warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["EigenGradCAM"]
__getattr__ = delegated(__name__, __all__)
