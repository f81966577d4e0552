"""``pytorch_grad_cam.fem``: FEM, the Feature Explanation Method (Fuad et al. 2020).

Not implemented by fastcam yet: ``FEM`` is pytorch-grad-cam's own, handed out with a warning
(``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["FEM"]
__getattr__ = delegated(__name__, __all__)
