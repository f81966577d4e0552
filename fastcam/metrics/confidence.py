"""Confidence-change metrics on the image masked by its saliency map.

N images, class c; p = softmax probability of c on the image x, o = on the
masked image x ⊙ S (S in [0, 1] at x's resolution). Each function returns the
per-image term (B,); the papers report the mean ×100.

Whether the mask is applied before or after mean/std normalisation changes
published Average Drop about 3×, so ``normalize`` is explicit: with
``(mean, std)``, x is pixel-space in [0, 1] and S multiplies it (masked pixels
black) before normalisation; with None, S multiplies the tensor given.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from ..engine import Precision, engine_for
from ..inputs import Normalize
from ..targets import TargetSpec
from ._common import check_maps, clean_probabilities, masked_probabilities


CONFIDENCE_METRICS = ("ad", "ai", "ag", "add")


def confidence_changes(model: nn.Module, x: Tensor, maps: Tensor, targets: TargetSpec = None, *,
                       normalize: Normalize = None, batch_size: int = 32,
                       which: Sequence[str] = CONFIDENCE_METRICS,
                       precision: Optional[Precision] = None) -> dict[str, Tensor]:
    """Several of the per-image terms below at once (``which`` ⊆ {"ad", "ai", "ag",
    "add"}): one clean pass for p, one pass on ``x ⊙ S`` for AD/AI/AG and one on
    ``x ⊙ (1 − S)`` for ADD, where calling the functions one by one repeats the
    clean pass for each. Returns ``{name: (B,) tensor}``, identical to the
    single-metric functions. ``precision``: how the model runs (:mod:`fastcam.engine`; None: fp32,
    or the Engine's when ``model`` is an :class:`~fastcam.engine.Engine`)."""
    model = engine_for(model, precision)
    unknown = [w for w in which if w not in CONFIDENCE_METRICS]
    if unknown or not which:
        raise ValueError(f"which must be a non-empty subset of {CONFIDENCE_METRICS}, got {list(which)}")
    maps = check_maps(x, maps)
    p, classes = clean_probabilities(model, x, targets, normalize, batch_size)
    out: dict[str, Tensor] = {}
    if {"ad", "ai", "ag"} & set(which):
        o = masked_probabilities(model, x, maps, classes, normalize, batch_size)
        terms = {"ad": lambda: torch.clamp(p - o, min=0) / p,
                 "ai": lambda: (p < o).to(p.dtype),
                 "ag": lambda: torch.clamp(o - p, min=0) / (1 - p)}
        out.update({name: terms[name]() for name in which if name in terms})
    if "add" in which:
        d = masked_probabilities(model, x, 1 - maps, classes, normalize, batch_size)
        out["add"] = (p - d) / p
    return {name: out[name] for name in which}


def average_drop(model: nn.Module, x: Tensor, maps: Tensor, targets: TargetSpec = None, *,
                 normalize: Normalize = None, batch_size: int = 32,
                 precision: Optional[Precision] = None) -> Tensor:
    """Average Drop (Grad-CAM++ paper, eq. 21; Opti-CAM paper, eq. 13), per image:
    ``max(0, p − o) / p``. AD = 100 · mean (lower is better)."""
    return confidence_changes(model, x, maps, targets, normalize=normalize,
                              batch_size=batch_size, precision=precision, which=("ad",))["ad"]


def average_increase(model: nn.Module, x: Tensor, maps: Tensor, targets: TargetSpec = None, *,
                     normalize: Normalize = None, batch_size: int = 32,
                 precision: Optional[Precision] = None) -> Tensor:
    """Average Increase / Increase in Confidence (Grad-CAM++ eq. 22; Opti-CAM
    eq. 14), per image: ``1[p < o]``. AI = 100 · mean (higher is better)."""
    return confidence_changes(model, x, maps, targets, normalize=normalize,
                              batch_size=batch_size, precision=precision, which=("ai",))["ai"]


def average_gain(model: nn.Module, x: Tensor, maps: Tensor, targets: TargetSpec = None, *,
                 normalize: Normalize = None, batch_size: int = 32,
                 precision: Optional[Precision] = None) -> Tensor:
    """Average Gain (Opti-CAM paper, eq. 15), per image: ``max(0, o − p) / (1 − p)``.
    AG = 100 · mean (higher is better)."""
    return confidence_changes(model, x, maps, targets, normalize=normalize,
                              batch_size=batch_size, precision=precision, which=("ag",))["ag"]


def average_drop_in_deletion(model: nn.Module, x: Tensor, maps: Tensor,
                             targets: TargetSpec = None, *, normalize: Normalize = None,
                             batch_size: int = 32,
                 precision: Optional[Precision] = None) -> Tensor:
    """Average Drop in Deletion (LIFT-CAM paper), per image: ``(p − d) / p`` with d
    the probability on the deleted image ``x ⊙ (1 − S)``. ADD = 100 · mean
    (higher is better: deleting the salient region should hurt)."""
    return confidence_changes(model, x, maps, targets, normalize=normalize,
                              batch_size=batch_size, precision=precision, which=("add",))["add"]
