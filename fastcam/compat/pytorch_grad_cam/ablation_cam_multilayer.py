"""``pytorch_grad_cam.ablation_cam_multilayer``: grad-cam's multi-layer variant of Ablation-CAM.

``replace_layer_recursive`` is fastcam's (:mod:`.utils.find_layers`, the same
function as grad-cam's copy in this module). Not implemented by fastcam yet:
``AblationLayer``, ``AblationCAM`` (this module's own classes, not those of
``ablation_layer`` / ``ablation_cam``) are pytorch-grad-cam's own, handed out
with a warning (``._delegate``); without grad-cam, accessing one raises ImportError.
"""
from ._delegate import delegated
from .utils.find_layers import replace_layer_recursive

__all__ = ["AblationLayer", "replace_layer_recursive", "AblationCAM"]
__getattr__ = delegated(__name__, ["AblationLayer", "AblationCAM"])
