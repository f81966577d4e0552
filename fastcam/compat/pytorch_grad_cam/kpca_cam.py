"""``pytorch_grad_cam.kpca_cam``: KPCA-CAM (kernel PCA of the activations).

Not implemented by fastcam yet: ``KPCA_CAM`` is pytorch-grad-cam's own, handed out with a
warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["KPCA_CAM"]
__getattr__ = delegated(__name__, __all__)
