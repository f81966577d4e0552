"""pytorch-grad-cam targets -> fastcam targets, checked against the batch."""
from __future__ import annotations

import numbers
import sys
from typing import Any, Optional

from torch import Tensor

from ...targets import TargetSpec
from .utils.model_targets import ClassifierOutputTarget


def _classifier_types() -> tuple[type, ...]:
    types = [ClassifierOutputTarget]
    theirs = sys.modules.get("pytorch_grad_cam.utils.model_targets")
    if theirs is not None and hasattr(theirs, "ClassifierOutputTarget"):
        types.append(theirs.ClassifierOutputTarget)
    return tuple(types)


def _category(target: Any, classifier_types: tuple[type, ...]) -> Optional[int]:
    """The class index a target stands for, or None for any other callable."""
    if type(target) in classifier_types:
        target = target.category
    elif not isinstance(target, (numbers.Integral, Tensor)) or isinstance(target, bool):
        return None
    if isinstance(target, Tensor):
        return int(target) if target.numel() == 1 and not target.is_floating_point() else None
    return int(target) if isinstance(target, numbers.Integral) and not isinstance(target, bool) else None


def method_targets(targets: Any, batch: int) -> TargetSpec:
    """None (each image's predicted class), or one target per image.

    ``ClassifierOutputTarget(c)`` objects (ours or pytorch-grad-cam's) and ints
    become class indices — the same scores (the raw logit), gathered on the
    device; other callables are applied to each image's output row.

    Raises ``ValueError`` when the number of targets is not the batch size
    (pytorch-grad-cam silently explains only the first ``len(targets)`` images).
    """
    if targets is None:
        return None
    if isinstance(targets, (numbers.Integral, Tensor)) and not isinstance(targets, bool):
        return targets          # fastcam's own forms: one class for all, or a (B,) tensor
    targets = list(targets)
    if len(targets) != batch:
        raise ValueError(f"got {len(targets)} targets for a batch of {batch} images: give one "
                         "target per image (pytorch-grad-cam would silently truncate)")
    types = _classifier_types()
    categories = [_category(t, types) for t in targets]
    if all(c is not None for c in categories):
        return categories
    return targets


def repeat_targets(targets: TargetSpec, times: int) -> TargetSpec:
    """The same targets for ``times`` stacked copies of the batch."""
    if targets is None or isinstance(targets, numbers.Integral):
        return targets
    if isinstance(targets, Tensor):
        return targets.repeat(times) if targets.dim() == 1 else targets
    return list(targets) * times
