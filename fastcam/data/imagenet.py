"""ImageNet-1k metadata: class names and the standard normalisation constants.

The 1000 human-readable class names are taken at import time from the list
that ships inside torchvision (``torchvision.models._meta``), index-aligned
with the usual ImageNet-1k label order (0 = "tench", 281 = "tabby", ...).
"""

from __future__ import annotations

from typing import List, Tuple

from torchvision.models._meta import _IMAGENET_CATEGORIES

__all__ = ["IMAGENET_CLASSES", "IMAGENET_MEAN", "IMAGENET_STD"]

#: 1000 ImageNet-1k class names, index = label id.
IMAGENET_CLASSES: List[str] = list(_IMAGENET_CATEGORIES)
assert len(IMAGENET_CLASSES) == 1000

#: Standard ImageNet per-channel RGB mean in [0,1] pixel space.
IMAGENET_MEAN: Tuple[float, float, float] = (0.485, 0.456, 0.406)
#: Standard ImageNet per-channel RGB std in [0,1] pixel space.
IMAGENET_STD: Tuple[float, float, float] = (0.229, 0.224, 0.225)
