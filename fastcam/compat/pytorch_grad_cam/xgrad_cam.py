"""``pytorch_grad_cam.xgrad_cam``: XGrad-CAM (Fu et al. 2020).

Not implemented by fastcam yet: ``XGradCAM`` is pytorch-grad-cam's own, handed out with a
warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["XGradCAM"]
__getattr__ = delegated(__name__, __all__)
