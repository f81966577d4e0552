"""``pytorch_grad_cam.guided_backprop``: guided backpropagation (Springenberg et al. 2015).

Not implemented by fastcam yet: ``GuidedBackpropReLU``, ``GuidedBackpropReLUasModule``,
``GuidedBackpropReLUModel`` are pytorch-grad-cam's own, handed out with a warning
(``._delegate``); without grad-cam, accessing one raises ImportError.
"""
from ._delegate import delegated

__all__ = ["GuidedBackpropReLU", "GuidedBackpropReLUasModule", "GuidedBackpropReLUModel"]
__getattr__ = delegated(__name__, __all__)
