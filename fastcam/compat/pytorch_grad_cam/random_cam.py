"""``pytorch_grad_cam.random_cam``: Random-CAM (random channel weights, a baseline).

Not implemented by fastcam yet: ``RandomCAM`` is pytorch-grad-cam's own, handed out with a
warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["RandomCAM"]
__getattr__ = delegated(__name__, __all__)
