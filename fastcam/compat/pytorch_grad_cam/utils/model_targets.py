"""Target callables with pytorch-grad-cam's names (``pytorch_grad_cam.utils.model_targets``).

A target turns one image's model output (a row of logits (C,), or a
segmentation model's scores (C, H, W)) into the scalar that is explained. Any
per-sample callable works the same way. The front-end recognises
:class:`ClassifierOutputTarget` (ours or pytorch-grad-cam's) and explains a
class index directly, on the device, with no per-image Python call.

Better than pytorch-grad-cam: a list of targets whose length differs from the
batch raises a ``ValueError`` in the front-end (pytorch-grad-cam zips the two
and silently drops the images without a target).
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ClassifierOutputTarget", "ClassifierOutputSoftmaxTarget", "ClassifierOutputReST",
           "BinaryClassifierOutputTarget", "SoftmaxOutputTarget", "RawScoresOutputTarget",
           "SemanticSegmentationTarget"]


def _pick(values: Tensor, category: int) -> Tensor:
    """``values[category]`` for one output row, ``values[:, category]`` for a batch."""
    return values[category] if values.dim() == 1 else values[:, category]


class ClassifierOutputTarget:
    """The raw score (logit) of ``category``: ``output[category]`` for one image's
    output row, ``output[:, category]`` for a (B, C) batch, as in pytorch-grad-cam."""

    def __init__(self, category: int):
        self.category = category

    def __call__(self, model_output: Tensor) -> Tensor:
        return _pick(model_output, self.category)

    def __repr__(self) -> str:
        return f"ClassifierOutputTarget({self.category!r})"


class ClassifierOutputSoftmaxTarget:
    """The softmax probability of ``category`` (softmax over the last dimension)."""

    def __init__(self, category: int):
        self.category = category

    def __call__(self, model_output: Tensor) -> Tensor:
        return _pick(torch.softmax(model_output, dim=-1), self.category)


class ClassifierOutputReST:
    """ReST (arXiv 2501.06261): the logit of ``category`` minus the cross-entropy
    of the output for that category, i.e. logit + log-probability."""

    def __init__(self, category: int):
        self.category = category

    def __call__(self, model_output: Tensor) -> Tensor:
        rows = model_output[None] if model_output.dim() == 1 else model_output
        target = torch.full((rows.shape[0],), self.category, dtype=torch.long, device=rows.device)
        score = rows[:, self.category] - F.cross_entropy(rows, target, reduction="none")
        return score[0] if model_output.dim() == 1 else score


class BinaryClassifierOutputTarget:
    """A single-logit binary classifier: the output for ``category == 1``, its
    negation for any other category."""

    def __init__(self, category: int):
        self.category = category

    def __call__(self, model_output: Tensor) -> Tensor:
        return model_output if self.category == 1 else -model_output


class SoftmaxOutputTarget:
    """The whole softmax vector (for metrics that compare outputs, not for maps)."""

    def __call__(self, model_output: Tensor) -> Tensor:
        return torch.softmax(model_output, dim=-1)


class RawScoresOutputTarget:
    """The output unchanged: for models with one score per image (regression,
    a single logit) or for metrics that compare whole outputs."""

    def __call__(self, model_output: Tensor) -> Tensor:
        return model_output


class SemanticSegmentationTarget:
    """Segmentation: the sum of ``category``'s scores over the pixels of ``mask``,
    ``Σ_ij output[category, i, j] · mask[i, j]`` for one image's output (C, H, W).

    ``mask`` may be a NumPy array (as in pytorch-grad-cam) or a tensor; it is
    moved to the output's device once, on the first call there.
    """

    def __init__(self, category: int, mask: Union[np.ndarray, Tensor]):
        self.category = category
        self.mask = torch.from_numpy(mask) if isinstance(mask, np.ndarray) else torch.as_tensor(mask)

    def __call__(self, model_output: Tensor) -> Tensor:
        if self.mask.device != model_output.device:
            self.mask = self.mask.to(model_output.device)
        return (model_output[self.category, :, :] * self.mask).sum()
