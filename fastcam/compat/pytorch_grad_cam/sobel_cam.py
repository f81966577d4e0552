"""``pytorch_grad_cam.sobel_cam``: a Sobel-edge map of the image (a baseline).

Not implemented by fastcam yet: ``sobel_cam`` is pytorch-grad-cam's own, handed out with a
warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["sobel_cam"]
__getattr__ = delegated(__name__, __all__)
