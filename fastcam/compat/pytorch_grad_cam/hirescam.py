"""``pytorch_grad_cam.hirescam``: HiResCAM (Draelos & Carin 2020).

Not implemented by fastcam yet: ``HiResCAM`` is pytorch-grad-cam's own, handed out with a
warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["HiResCAM"]
__getattr__ = delegated(__name__, __all__)
