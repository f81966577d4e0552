"""``pytorch_grad_cam.finer_cam``: Finer-CAM.

Not implemented by fastcam yet: ``FinerCAM`` is pytorch-grad-cam's own, handed out with a
warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["FinerCAM"]
__getattr__ = delegated(__name__, __all__)
