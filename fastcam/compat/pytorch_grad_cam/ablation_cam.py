"""``pytorch_grad_cam.ablation_cam``: Ablation-CAM (Desai & Ramaswamy 2020).

Not implemented by fastcam yet: ``AblationCAM`` is pytorch-grad-cam's own, handed out with a
warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["AblationCAM"]
__getattr__ = delegated(__name__, __all__)
