"""``pytorch_grad_cam.fullgrad_cam``: FullGrad (Srinivas & Fleuret 2019).

Not implemented by fastcam yet: ``FullGrad`` is pytorch-grad-cam's own, handed out with a
warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["FullGrad"]
__getattr__ = delegated(__name__, __all__)
