"""``pytorch_grad_cam.feature_factorization.deep_feature_factorization``: deep feature
factorization (Collins et al. 2018).

Not implemented by fastcam yet: ``dff``, ``DeepFeatureFactorization``, ``run_dff_on_image``
are pytorch-grad-cam's own, handed out with a warning (``.._delegate``); without grad-cam,
accessing one raises ImportError.
"""
from .._delegate import delegated

__all__ = ["dff", "DeepFeatureFactorization", "run_dff_on_image"]
__getattr__ = delegated(__name__, __all__)
