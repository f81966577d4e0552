"""fastcam: fast, batched class activation maps for PyTorch CNN classifiers."""
from __future__ import annotations

__version__ = "0.1.0"

from . import ops
from .backend import get_backend, set_backend, use_backend

__all__ = ["ops", "set_backend", "get_backend", "use_backend", "__version__"]
