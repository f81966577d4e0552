"""TorchCAM 0.5 interface on fastcam's methods (``torchcam.methods``, ``torchcam.utils``).

Change ``from torchcam.methods import GradCAM`` to
``from fastcam.compat.torchcam.methods import GradCAM`` and keep the script::

    cam = GradCAM(model, target_layer="layer4")
    out = model(x)                       # the user's forward; the hooks record what is needed
    maps = cam(class_idx, out)           # list of (N, h, w) maps, one per target layer
    fused = cam.fuse_cams(maps)

The channel weights come from the native methods of :mod:`fastcam.methods`,
evaluated on what the hooks recorded, with TorchCAM's numerics where the two
differ (each class's docstring says where).
"""
from . import methods, utils

__all__ = ["methods", "utils"]
