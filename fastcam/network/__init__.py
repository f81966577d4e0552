"""Target-layer lookup and activation/gradient capture."""
from .layers import find_spatial_layer, resolve_layers
from .hooks import ActivationCapture

__all__ = ["find_spatial_layer", "resolve_layers", "ActivationCapture"]
