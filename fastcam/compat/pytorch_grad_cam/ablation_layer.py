"""``pytorch_grad_cam.ablation_layer``: the layers Ablation-CAM swaps in to ablate channels
(CNN, ViT, Faster R-CNN).

Not implemented by fastcam yet: ``AblationLayer``, ``AblationLayerVit``,
``AblationLayerFasterRCNN`` are pytorch-grad-cam's own, handed out with a warning
(``._delegate``); without grad-cam, accessing one raises ImportError.
"""
from ._delegate import delegated

__all__ = ["AblationLayer", "AblationLayerVit", "AblationLayerFasterRCNN"]
__getattr__ = delegated(__name__, __all__)
