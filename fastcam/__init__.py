"""fastcam: fast, batched class activation maps for PyTorch CNN classifiers.

Public names only, imported lazily (PEP 562 module ``__getattr__``): ``import
fastcam`` imports neither torch nor torchvision; ``fastcam.GradCAM``,
``from fastcam import explain`` etc. import what they name on first use.
``__all__`` lists :func:`explain`, :func:`generate`, :func:`overlay`,
:func:`save_overlay`, :func:`load_image`, every method class of
``fastcam.methods.__all__`` with ``BaseCAM``, ``CAMRecord`` and ``METHODS``, the
backend switches, ``models``, ``ops`` and ``__version__``.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from ._version import __version__

#: public name -> the module that defines it
_DEFINED_IN = {
    "explain": ".api",
    "generate": ".generation.run",
    "set_backend": ".backend",
    "get_backend": ".backend",
    "use_backend": ".backend",
    "overlay": ".visualize",
    "save_overlay": ".visualize",
    "load_image": ".data.photos",
}
#: subpackages in ``__all__``
_SUBPACKAGES = ("models", "ops")
#: names of ``fastcam.methods.__all__`` not re-exported here
_NOT_REEXPORTED = frozenset({"PEER_METHODS"})


def _method_names() -> list[str]:
    methods = importlib.import_module(".methods", __name__)
    return [n for n in methods.__all__ if n not in _NOT_REEXPORTED]


def __getattr__(name: str) -> Any:
    if name == "__all__":
        value: Any = ["explain", *_method_names(), *_SUBPACKAGES, "set_backend", "get_backend",
                      "use_backend", "__version__", "generate", "overlay", "save_overlay", "load_image"]
    elif name in _DEFINED_IN:
        value = getattr(importlib.import_module(_DEFINED_IN[name], __name__), name)
    elif name.startswith("_"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    elif importlib.util.find_spec(f"{__name__}.{name}") is not None:
        value = importlib.import_module(f".{name}", __name__)     # fastcam.methods, fastcam.metrics, ...
    elif name in _method_names():
        value = getattr(importlib.import_module(".methods", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__getattr__("__all__")))
