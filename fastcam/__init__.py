"""fastcam: fast, batched class activation maps for PyTorch CNN classifiers."""
from __future__ import annotations

__version__ = "0.1.0"

from . import models, ops
from .api import explain
from .backend import get_backend, set_backend, use_backend
from .methods import *  # noqa: F403 (every method class, BaseCAM, CAMRecord, METHODS: methods.__all__)
from .methods import __all__ as _METHOD_NAMES
from .generate import generate

__all__ = [
    "explain", *(n for n in _METHOD_NAMES if n != "PEER_METHODS"),
    "models", "ops", "set_backend", "get_backend", "use_backend", "__version__", "generate",
]
