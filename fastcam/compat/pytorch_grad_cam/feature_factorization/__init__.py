"""``pytorch_grad_cam.feature_factorization``: deep feature factorization (submodule
``deep_feature_factorization``, imported on first use)."""
from .._delegate import delegated

__getattr__ = delegated(__name__, ())
