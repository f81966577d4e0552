"""``pytorch_grad_cam.layer_cam``: Layer-CAM (Jiang et al. 2021).

Not implemented by fastcam yet: ``LayerCAM`` is pytorch-grad-cam's own, handed out with a
warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["LayerCAM"]
__getattr__ = delegated(__name__, __all__)
