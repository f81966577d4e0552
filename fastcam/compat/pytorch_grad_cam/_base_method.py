"""A meta-method's ``base_method`` (ours or pytorch-grad-cam's class) -> our front-end class."""
from __future__ import annotations

import importlib
from typing import Any

from .base_cam import BaseCAM


def front_end_class(base_method: Any, default: type, owner: str) -> type:
    """Our front-end class for ``base_method``: one of ours as it is, one of
    pytorch-grad-cam's by its name (``pytorch_grad_cam.GradCAM`` -> ours), None
    -> ``default``. Anything else is a ``TypeError``."""
    if base_method is None:
        return default
    if isinstance(base_method, type) and issubclass(base_method, BaseCAM):
        return base_method
    name = getattr(base_method, "__name__", None)
    if isinstance(base_method, type) and name:
        package = importlib.import_module(__package__)
        ours = getattr(package, name, None) if name in getattr(package, "__all__", ()) else None
        if isinstance(ours, type) and issubclass(ours, BaseCAM):
            return ours
    raise TypeError(f"{owner}'s base_method must be a CAM class of pytorch-grad-cam or of "
                    f"fastcam.compat.pytorch_grad_cam that fastcam implements, got {base_method!r}")
