"""ImageNet-1k metadata: class names and the standard normalisation constants.

The 1000 human-readable class names are read from ``imagenet_classes.txt``,
shipped with fastcam (one name a line, in the usual ImageNet-1k label order:
0 = "tench", 281 = "tabby", ...; the same list torchvision's weights carry in
their ``meta["categories"]``), so that no torchvision import is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

__all__ = ["IMAGENET_CLASSES", "IMAGENET_MEAN", "IMAGENET_STD"]


def _read_classes() -> List[str]:
    names = (Path(__file__).with_name("imagenet_classes.txt")
             .read_text(encoding="utf-8").splitlines())
    if len(names) != 1000:
        raise RuntimeError(f"fastcam/data/imagenet_classes.txt holds {len(names)} names, not 1000: "
                           "the installation is damaged")
    return names


#: 1000 ImageNet-1k class names, index = label id.
IMAGENET_CLASSES: List[str] = _read_classes()

#: Standard ImageNet per-channel RGB mean in [0,1] pixel space.
IMAGENET_MEAN: Tuple[float, float, float] = (0.485, 0.456, 0.406)
#: Standard ImageNet per-channel RGB std in [0,1] pixel space.
IMAGENET_STD: Tuple[float, float, float] = (0.229, 0.224, 0.225)
