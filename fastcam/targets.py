"""Which class score each image is explained for.

``targets`` may be None (the predicted class of each image), an int (one class
for all), a sequence or 1-D integer tensor of length B, or a sequence of B
callables ``f(logits_row) -> scalar`` (pytorch-grad-cam's ``ClassifierOutputTarget``
objects are such callables). A length other than B is an error, never a
silent truncation.
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

import numbers

import numpy as np
import torch
from torch import Tensor

TargetSpec = Union[None, int, Sequence[int], Tensor, Sequence[Callable[[Tensor], Tensor]]]


class Targets:
    """Resolved targets for a batch: class indices (B,) or B callables."""

    def __init__(self, indices: Tensor | None, callables: list | None):
        self.indices = indices
        self.callables = callables

    def scores(self, logits: Tensor) -> Tensor:
        """The (B,) target scores of ``logits`` (B, C) — or any (B, ...) output
        with callables — differentiable."""
        if self.callables is not None:
            values = [torch.as_tensor(f(row)) for f, row in zip(self.callables, logits)]
            for v in values:
                if v.numel() != 1:
                    raise ValueError(f"a target callable returned {v.numel()} values; "
                                     "it must return one scalar per image")
            return torch.stack([v.reshape(()) for v in values]).to(logits.dtype)
        return logits.gather(1, self.indices[:, None])[:, 0]


def resolve_targets(targets: TargetSpec, logits: Tensor) -> Targets:
    """Check ``targets`` against the batch's ``logits`` (B, C) and resolve them.
    B callables take one image's output whatever its shape (a segmentation
    model's (C, H, W) scores: pytorch-grad-cam's ``SemanticSegmentationTarget``)."""
    if (isinstance(targets, (list, tuple)) and targets and all(callable(t) for t in targets)
            and logits.dim() >= 1):
        if len(targets) != logits.shape[0]:
            raise ValueError(f"got {len(targets)} targets for a batch of {logits.shape[0]} images")
        return Targets(None, list(targets))
    if logits.dim() != 2:
        raise ValueError(f"the model must return logits of shape (B, C), got {tuple(logits.shape)}")
    B, C = logits.shape
    if targets is None:
        return Targets(logits.detach().argmax(dim=1), None)
    if isinstance(targets, (bool, np.bool_)):
        raise TypeError("targets must be None, an int, a sequence of B ints or B callables")
    if isinstance(targets, numbers.Real) and not isinstance(targets, numbers.Integral):
        raise TypeError(f"targets must be class indices (ints), got the float {targets!r}")
    if isinstance(targets, np.ndarray):
        if targets.dtype.kind not in "iu":
            raise TypeError(f"a target array must hold integers, got dtype {targets.dtype}")
        targets = torch.from_numpy(np.ascontiguousarray(targets))
    if isinstance(targets, numbers.Integral):
        targets = int(targets)
    if isinstance(targets, int):
        idx = torch.full((B,), targets, dtype=torch.long, device=logits.device)
    elif isinstance(targets, Tensor):
        if targets.dim() == 0:
            targets = targets.reshape(1).expand(B)
        if targets.dim() != 1 or targets.is_floating_point():
            raise ValueError(f"a target tensor must be 1-D integer, got {tuple(targets.shape)} "
                             f"{targets.dtype}")
        idx = targets.to(device=logits.device, dtype=torch.long)
    else:
        targets = list(targets)
        if len(targets) != B:
            raise ValueError(f"got {len(targets)} targets for a batch of {B} images")
        if any(isinstance(t, (bool, np.bool_)) or (isinstance(t, Tensor) and t.is_floating_point())
               or (isinstance(t, numbers.Real) and not isinstance(t, numbers.Integral))
               for t in targets):
            raise TypeError(f"targets must be class indices (ints), got {targets!r}")
        if not all(isinstance(t, numbers.Integral) or (isinstance(t, Tensor) and t.numel() == 1)
                   for t in targets):
            raise TypeError("targets must be all ints or all callables")
        idx = torch.tensor([int(t) for t in targets], dtype=torch.long, device=logits.device)
    if idx.numel() != B:
        raise ValueError(f"got {idx.numel()} targets for a batch of {B} images")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= C):
        raise ValueError(f"target class out of range [0, {C}): {idx.tolist()}")
    return Targets(idx, None)
