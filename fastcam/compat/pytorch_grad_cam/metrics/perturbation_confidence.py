"""Confidence-change metrics, batched: the machinery behind pytorch-grad-cam 1.5.7's
``metrics.perturbation_confidence`` (``PerturbationConfidenceMetric``,
``RemoveMostRelevantFirst``, ``RemoveLeastRelevantFirst``, ``AveragerAcrossThresholds``).

What grad-cam computes, and we reproduce: for images x, maps S and per-sample
targets t_i, ``score_i = t_i(model(perturb(x, S))_i) − t_i(model(x)_i)`` as a
float32 NumPy array. Differences from grad-cam, all deliberate:

* The perturbation is applied to the whole batch on the input's device (grad-cam
  moves every image to the CPU and back, one at a time); model forwards run under
  ``torch.inference_mode`` in chunks of ``batch_size`` images and the scores stay on
  the device until the final conversion.
* ``targets`` must have one entry per image: grad-cam ``zip``s targets with the
  outputs and silently drops the images beyond the shorter of the two; we raise.
* ``cams`` must be (B, H, W) matching the input and free of NaN (grad-cam fails deep
  inside, or not at all and returns garbage); we raise ``ValueError``.
* A perturbation here is batched: ``perturbation(input (B,C,H,W), cams (B,H,W))``
  returns (B,C,H,W) (grad-cam's is called per image with (C,H,W) and (H,W)).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from fastcam.engine import Engine
from fastcam.metrics.road import percentile_threshold

Perturbation = Callable[[Tensor, Tensor], Tensor]
CamsLike = Union[np.ndarray, Tensor]


def check_inputs(input_tensor: Tensor, cams: CamsLike, targets: Sequence[Callable]) -> Tensor:
    """Validate a metric call; returns ``cams`` as a floating tensor on the input's device."""
    if not isinstance(input_tensor, Tensor) or input_tensor.dim() != 4:
        raise ValueError("input_tensor must be a (B, C, H, W) tensor, got "
                         f"{getattr(input_tensor, 'shape', type(input_tensor))}")
    b, _, h, w = input_tensor.shape
    cams_t = torch.as_tensor(cams)
    if tuple(cams_t.shape) != (b, h, w):
        raise ValueError(f"cams must have shape (B, H, W) = {(b, h, w)} to match input_tensor, "
                         f"got {tuple(cams_t.shape)}")
    if not cams_t.is_floating_point() or cams_t.dtype not in (torch.float32, torch.float64):
        cams_t = cams_t.float()
    if bool(torch.isnan(cams_t).any()):
        raise ValueError("cams contain NaN")
    if targets is None:
        raise ValueError("targets must be a sequence of per-image callables, got None")
    if len(targets) != b:
        raise ValueError(f"got {len(targets)} targets for a batch of {b} images; pytorch-grad-cam "
                         "would silently truncate to the shorter, fastcam requires one per image")
    return cams_t.to(input_tensor.device)


def target_scores(model: nn.Module, images: Tensor, targets: Sequence[Callable],
                  batch_size: Optional[int] = None) -> Tensor:
    """``targets[j % len(targets)](model(images)[j])`` for every row j, stacked on the
    device. The model runs under inference mode in chunks of ``batch_size`` images."""
    n = images.shape[0]
    step = n if not batch_size else max(1, int(batch_size))
    scores, engine = [], Engine(model)
    with torch.inference_mode():
        for s in range(0, n, step):
            out = engine.forward(images[s:s + step])
            scores.extend(torch.as_tensor(targets[(s + i) % len(targets)](row), device=row.device)
                          for i, row in enumerate(out))
    return torch.stack(scores)


def to_numpy(scores: Tensor) -> np.ndarray:
    return scores.detach().to("cpu", torch.float32).numpy()


class PerturbationConfidenceMetric:
    """Change of the targets' scores when the images are perturbed by their maps.

    Args:
        perturbation: batched ``(input (B,C,H,W), cams (B,H,W)) -> (B,C,H,W)``.
        batch_size: images per model forward (default: the input's batch size).
    """

    def __init__(self, perturbation: Perturbation, batch_size: Optional[int] = None):
        self.perturbation = perturbation
        self.batch_size = batch_size

    def __call__(self, input_tensor: Tensor, cams: CamsLike, targets: Sequence[Callable],
                 model: nn.Module, return_visualization: bool = False,
                 return_diff: bool = True) -> Union[np.ndarray, Tuple[np.ndarray, Tensor]]:
        """Returns float32 scores (B,) — after minus before when ``return_diff`` —
        and, with ``return_visualization``, the perturbed batch (B,C,H,W) on the device."""
        cams_t = check_inputs(input_tensor, cams, targets)
        with torch.inference_mode():
            perturbed = self.perturbation(input_tensor, cams_t)
        scores = target_scores(model, perturbed, targets, self.batch_size)
        if return_diff:
            scores = scores - target_scores(model, input_tensor, targets, self.batch_size)
        result = self._finish(to_numpy(scores))
        return (result, perturbed) if return_visualization else result

    def _finish(self, scores: np.ndarray) -> np.ndarray:
        return scores


def otsu_keep(values: Tensor) -> Tensor:
    """grad-cam's ``percentile='auto'``: ``cv2.threshold(np.uint8(v·255), 0, 255,
    THRESH_BINARY + THRESH_OTSU)`` per image; True (kept) where the byte is above
    Otsu's threshold. Otsu's between-class variance over the 256-bin histogram is
    maximised in float64, first maximum wins, as in OpenCV (ties may round differently)."""
    flat = (values.flatten(1) * 255).to(torch.uint8)                  # truncation, as np.uint8
    hist = torch.zeros(flat.shape[0], 256, dtype=torch.float64, device=flat.device)
    hist.scatter_add_(1, flat.long(), torch.ones_like(flat, dtype=torch.float64))
    p = hist / flat.shape[1]
    levels = torch.arange(256, dtype=torch.float64, device=flat.device)
    q1 = p.cumsum(1)
    q2 = 1.0 - q1
    m1 = (p * levels).cumsum(1)
    mu = m1[:, -1:]
    eps = float(np.finfo(np.float32).eps)
    valid = (torch.minimum(q1, q2) >= eps) & (torch.maximum(q1, q2) <= 1.0 - eps)
    mu1 = m1 / q1.clamp_min(eps)
    mu2 = (mu - m1) / q2.clamp_min(eps)
    sigma = torch.where(valid, q1 * q2 * (mu1 - mu2) ** 2, 0.0)
    best = sigma.max(1, keepdim=True).values
    # first index whose sigma beats 0 and equals the maximum; 0 when none does
    hit = (sigma == best) & (best > 0)
    thresh = torch.where(hit.any(1), hit.to(torch.uint8).argmax(1), 0)
    return (flat > thresh[:, None].to(torch.uint8)).reshape(values.shape)


class RemoveMostRelevantFirst:
    """Batched perturbation: impute the pixels whose map value is at or above the
    per-image ``percentile`` (kept: ``map < np.percentile(map, percentile)``, grad-cam's
    rule, so percentile=80 removes the top 20 %). ``'auto'`` uses Otsu's threshold and
    grad-cam's convention for it (kept: pixels *above* the threshold).

    ``imputer(x (B,C,H,W), keep (B,H,W) bool) -> (B,C,H,W)``."""

    def __init__(self, percentile: Union[float, str], imputer: Callable[[Tensor, Tensor], Tensor]):
        self.percentile = percentile
        self.imputer = imputer

    def ranking(self, cams: Tensor) -> Tensor:
        return cams

    def keep_mask(self, cams: Tensor) -> Tensor:
        values = self.ranking(cams)
        if self.percentile == "auto":
            return otsu_keep(values)
        thr = percentile_threshold(values, self.percentile)
        return values < thr[:, None, None]

    def __call__(self, input_tensor: Tensor, cams: Tensor) -> Tensor:
        return self.imputer(input_tensor, self.keep_mask(cams))


class RemoveLeastRelevantFirst(RemoveMostRelevantFirst):
    """As :class:`RemoveMostRelevantFirst` on ``1 − map``: percentile=20 keeps the
    20 % most relevant pixels and imputes the rest."""

    def ranking(self, cams: Tensor) -> Tensor:
        return 1 - cams


class AveragerAcrossThresholds:
    """Mean over ``percentiles`` of ``imputer(percentile)(input, cams, targets, model)``
    (grad-cam's generic averager; the ROAD averages use a batched path instead)."""

    def __init__(self, imputer: Callable[[float], Callable], percentiles: Sequence[float] = (
            10, 20, 30, 40, 50, 60, 70, 80, 90)):
        self.imputer = imputer
        self.percentiles = list(percentiles)

    def __call__(self, input_tensor: Tensor, cams: CamsLike, targets: Sequence[Callable],
                 model: nn.Module) -> np.ndarray:
        scores = [self.imputer(p)(input_tensor, cams, targets, model) for p in self.percentiles]
        return np.mean(np.float32(scores), axis=0)
