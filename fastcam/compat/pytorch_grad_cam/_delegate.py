"""Names of pytorch-grad-cam that fastcam does not implement, handed out from grad-cam.

A module of the front-end that mirrors one of grad-cam 1.5.7's modules but does
not (yet) implement some of its names gets a module-level ``__getattr__``
(PEP 562) from :func:`delegated`::

    __all__ = ["EigenCAM"]
    __getattr__ = delegated(__name__, __all__)

Accessing ``EigenCAM`` there imports grad-cam's counterpart module
(``fastcam.compat.pytorch_grad_cam.eigen_cam`` -> ``pytorch_grad_cam.eigen_cam``),
warns once that the object is pytorch-grad-cam's own, caches it in our module
and returns it — the very object, so ``isinstance`` checks and grad-cam's own
conventions hold. Without grad-cam installed the access raises an ImportError
saying to install it. Replacing a delegation by a native implementation means
defining the name in the module and dropping it from the list.

The same ``__getattr__`` imports our own submodules on first attribute access
(``fastcam.compat.pytorch_grad_cam.metrics``), as ``import pytorch_grad_cam``
makes its submodules reachable as attributes.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import warnings
from typing import Any, Callable, Iterable

#: our package name prefix that grad-cam's module names lack
_PREFIX = "fastcam.compat."
#: grad-cam's import name (PyPI ``grad-cam``)
GRAD_CAM = "pytorch_grad_cam"


def their_module_name(module_name: str) -> str:
    """grad-cam's module mirrored by ours: ``fastcam.compat.pytorch_grad_cam.X`` -> ``pytorch_grad_cam.X``."""
    if not module_name.startswith(_PREFIX + GRAD_CAM):
        raise ValueError(f"{module_name!r} is not a module of fastcam.compat.{GRAD_CAM}")
    return module_name[len(_PREFIX):]


def load_delegated(module_name: str, name: str) -> Any:
    """grad-cam's ``name`` from the counterpart of our module ``module_name``.

    Warns (``UserWarning``, once: the object is then cached in our module) that
    fastcam does not implement it; raises ``ImportError`` when grad-cam is not
    installed. An ImportError of grad-cam's own dependencies propagates as it is.
    """
    theirs = their_module_name(module_name)
    try:
        module = importlib.import_module(theirs)
    except ImportError as err:
        if err.name is None or not (theirs == err.name or theirs.startswith(err.name + ".")):
            raise                       # grad-cam is there, one of its dependencies is not
        raise ImportError(f"fastcam does not implement pytorch-grad-cam's {name}; install "
                          "grad-cam (pip install grad-cam) to use its own implementation",
                          name=theirs) from None
    value = getattr(module, name)
    kind = "class" if inspect.isclass(value) else "function" if callable(value) else "object"
    warnings.warn(f"fastcam does not implement {name}: this is pytorch-grad-cam's own {kind} "
                  "(its speed, its conventions)", stacklevel=3)
    setattr(sys.modules[module_name], name, value)      # warn once per name and module
    return value


def _is_submodule(module_name: str, name: str) -> bool:
    """Whether our package ``module_name`` has a submodule ``name`` (not yet imported)."""
    if name.startswith("__") or not hasattr(sys.modules[module_name], "__path__"):
        return False
    return importlib.util.find_spec(f"{module_name}.{name}") is not None


def delegated(module_name: str, names: Iterable[str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``module_name``: the ``names`` come from
    grad-cam (:func:`load_delegated`), our submodules are imported on first
    access, any other name raises ``AttributeError``. The function's
    ``delegated`` attribute is the frozenset of delegated names."""
    names = frozenset(names)

    def __getattr__(name: str) -> Any:
        if name in names:
            return load_delegated(module_name, name)
        if _is_submodule(module_name, name):
            return importlib.import_module(f"{module_name}.{name}")
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    __getattr__.delegated = names
    return __getattr__
