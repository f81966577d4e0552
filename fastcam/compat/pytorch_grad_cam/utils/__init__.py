"""Helpers with pytorch-grad-cam's names (``pytorch_grad_cam.utils``)."""
from . import find_layers, model_targets, reshape_transforms
from .image import deprocess_image
from .svd_on_activations import get_2d_projection

__all__ = ["find_layers", "model_targets", "reshape_transforms", "deprocess_image",
           "get_2d_projection"]
