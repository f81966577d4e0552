"""``pytorch_grad_cam.activations_and_gradients``: the hooks recording a layer's activations
and gradients.

Not implemented by fastcam yet: ``ActivationsAndGradients`` is pytorch-grad-cam's own,
handed out with a warning (``._delegate``); without grad-cam, accessing it raises
ImportError.
"""
from ._delegate import delegated

__all__ = ["ActivationsAndGradients"]
__getattr__ = delegated(__name__, __all__)
