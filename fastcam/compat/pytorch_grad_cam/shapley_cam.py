"""``pytorch_grad_cam.shapley_cam``: Shapley-CAM (gradient and Hessian-vector product weights,
arXiv 2501.06261).

Not implemented by fastcam yet: ``ShapleyCAM`` is pytorch-grad-cam's own, handed out with a
warning (``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from ._delegate import delegated

__all__ = ["ShapleyCAM"]
__getattr__ = delegated(__name__, __all__)
