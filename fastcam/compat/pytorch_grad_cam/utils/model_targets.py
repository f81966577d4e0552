"""Target callables with pytorch-grad-cam's names (``pytorch_grad_cam.utils.model_targets``).

A target turns one image's model output (a row of logits (C,), or a
segmentation model's scores (C, H, W)) into the scalar that is explained. Any
per-sample callable works the same way. The front-end recognises
:class:`ClassifierOutputTarget` (ours or pytorch-grad-cam's) and explains a
class index directly, on the device, with no per-image Python call.

Better than pytorch-grad-cam: :class:`FasterRCNNBoxScoreTarget` and
:class:`FinerWeightedTarget` check their arguments when built (theirs zip
mismatched lists silently, or return a plain 0.0); a list of targets whose length differs from the
batch raises a ``ValueError`` in the front-end (pytorch-grad-cam zips the two
and silently drops the images without a target).
"""
from __future__ import annotations

from typing import Mapping, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ClassifierOutputTarget", "ClassifierOutputSoftmaxTarget", "ClassifierOutputReST",
           "BinaryClassifierOutputTarget", "SoftmaxOutputTarget", "RawScoresOutputTarget",
           "SemanticSegmentationTarget", "FasterRCNNBoxScoreTarget", "FinerWeightedTarget"]


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


def _as_tensor(values, dtype: torch.dtype | None = None) -> Tensor:
    """A tensor of ``values`` (a tensor, array, list of numbers, arrays or tensors)."""
    if isinstance(values, Tensor):
        return values.detach()
    if isinstance(values, (list, tuple)) and values and all(isinstance(v, Tensor) for v in values):
        return torch.stack([v.detach() for v in values])
    return torch.as_tensor(np.asarray(values), dtype=dtype)


class FasterRCNNBoxScoreTarget:
    """Object detection (torchvision's Faster R-CNN output dict for one image:
    ``boxes`` (N, 4) x1y1x2y2, ``labels`` (N,), ``scores`` (N,)).

    For each reference box ``bounding_boxes[j]`` with label ``labels[j]`` (e.g.
    the detections on the clean image), the detected box of highest IoU with it
    counts ``IoU + score`` if that IoU exceeds ``iou_threshold`` and its label is
    ``labels[j]``, else 0; the target is the sum, a (1,) tensor — pytorch-grad-cam's
    definition, computed for all reference boxes at once (one IoU matrix).
    No detections (or no reference boxes): ``tensor([0.])``.

    ``labels`` and ``bounding_boxes`` must have the same length (pytorch-grad-cam
    zips them and drops the extra ones) — ``ValueError`` otherwise.
    """

    def __init__(self, labels: Union[Sequence[int], np.ndarray, Tensor],
                 bounding_boxes: Union[Sequence, np.ndarray, Tensor], iou_threshold: float = 0.5):
        self.labels = labels
        self.bounding_boxes = bounding_boxes
        self.iou_threshold = iou_threshold
        self._labels = _as_tensor(labels, torch.long).reshape(-1)
        boxes = _as_tensor(bounding_boxes)
        if boxes.numel() == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.dim() != 2 or boxes.shape[1] != 4:
            raise ValueError(f"bounding_boxes must be (M, 4) boxes x1, y1, x2, y2, got shape "
                             f"{tuple(boxes.shape)}")
        if len(self._labels) != len(boxes):
            raise ValueError(f"got {len(self._labels)} labels for {len(boxes)} bounding boxes: "
                             "give one label per box")
        self._boxes = boxes

    def __call__(self, model_outputs: Mapping[str, Tensor]) -> Tensor:
        from torchvision.ops import box_iou

        boxes = model_outputs["boxes"]
        zero = torch.zeros(1, device=boxes.device, dtype=boxes.dtype)
        if len(boxes) == 0 or len(self._boxes) == 0:
            return zero
        reference = self._boxes.to(device=boxes.device, dtype=boxes.dtype)
        ious = box_iou(reference, boxes)                            # (M, N)
        best = ious.argmax(dim=1)                                   # first maximum, as theirs
        best_iou = ious.gather(1, best[:, None])[:, 0]
        same_label = model_outputs["labels"][best] == self._labels.to(boxes.device)
        hit = (best_iou > self.iou_threshold) & same_label
        scores = best_iou + model_outputs["scores"][best]
        return zero + torch.where(hit, scores, torch.zeros_like(scores)).sum()


class FinerWeightedTarget:
    """Finer-CAM's target: the main category's score against similar categories.

    With ``y`` the output (logits, last dimension = classes), ``p = softmax(y)``
    and ``m = main_category``: ``Σ_j p_j (y_m − alpha · y_j) / (Σ_j p_j + 1e-9)``
    over ``j`` in ``comparison_categories`` (repeats count twice), as
    pytorch-grad-cam; one image's row (C,) gives a scalar, a batch (..., C) one
    value per row. Vectorised over the comparison categories.

    ``comparison_categories`` must not be empty (pytorch-grad-cam then returns
    the Python float 0.0, which has no gradient) — ``ValueError``.
    """

    def __init__(self, main_category: int, comparison_categories: Sequence[int], alpha: float):
        self.main_category = main_category
        self.comparison_categories = comparison_categories
        self.alpha = alpha
        self._others = _as_tensor(comparison_categories, torch.long).reshape(-1)
        if len(self._others) == 0:
            raise ValueError("FinerWeightedTarget needs at least one comparison category")

    def __call__(self, model_output: Tensor) -> Tensor:
        others = self._others.to(model_output.device)
        weights = torch.softmax(model_output, dim=-1)[..., others]
        main = model_output[..., self.main_category, None]
        gap = main - self.alpha * model_output[..., others]
        return (weights * gap).sum(-1) / (weights.sum(-1) + 1e-9)
