"""``pytorch_grad_cam.refine_cam``: Refine-CAM, aggregating the CAMs of several layers.

Not implemented by fastcam yet: ``RefineCAM`` is pytorch-grad-cam's own, handed out with a
warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["RefineCAM"]
__getattr__ = delegated(__name__, __all__)
