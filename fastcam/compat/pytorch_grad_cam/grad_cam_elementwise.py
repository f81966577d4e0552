"""``pytorch_grad_cam.grad_cam_elementwise``: element-wise Grad-CAM.

Not implemented by fastcam yet: ``GradCAMElementWise`` is pytorch-grad-cam's own, handed out
with a warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["GradCAMElementWise"]
__getattr__ = delegated(__name__, __all__)
