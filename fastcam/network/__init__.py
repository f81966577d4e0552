"""Target-layer lookup, activation capture, and the prefix/tail split."""
from .hooks import ActivationCapture
from .layers import find_spatial_layer, resolve_layers
from .split import Prefix, SplitError, Tail, split

__all__ = ["find_spatial_layer", "resolve_layers", "ActivationCapture", "split", "Prefix", "Tail",
           "SplitError"]
