"""Every method on every image (in batches), every metric on every map, with
the time each method and each metric took.

Metric names (all reported ×100):

==========  =====================================================  ====
name        definition (:mod:`fastcam.metrics`)                    best
==========  =====================================================  ====
ad          Average Drop (Grad-CAM++ eq. 21)                        low
ai          Average Increase (Grad-CAM++ eq. 22)                    high
ag          Average Gain (Opti-CAM eq. 13)                          high
add         Average Drop in Deletion (LIFT-CAM)                     high
insertion   insertion AUC (RISE, 224 steps at 224²)                 high
deletion    deletion AUC (RISE)                                     low
pointing    pointing game, 15 px tolerance (Zhang et al. 2016)      high
energy      energy-based pointing game (Score-CAM, Wang et al.)     high
==========  =====================================================  ====
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .. import metrics as M
from ..inputs import Normalize
from ..methods import METHODS
from .errors import EvalError


@dataclass(frozen=True)
class MetricSpec:
    name: str
    title: str
    higher_is_better: bool
    needs_boxes: bool
    fn: Callable


def _model_metric(fn, curve: bool = False):
    def run(model, x, maps, classes, boxes, normalize, batch_size, steps):
        kw = {"steps": steps} if curve else {}
        return fn(model, x, maps, classes, normalize=normalize, batch_size=batch_size, **kw)
    return run


def _box_metric(fn):
    def run(model, x, maps, classes, boxes, normalize, batch_size, steps):
        return fn(maps, boxes)
    return run


METRICS: dict[str, MetricSpec] = {
    "ad": MetricSpec("ad", "AD", False, False, _model_metric(M.average_drop)),
    "ai": MetricSpec("ai", "AI", True, False, _model_metric(M.average_increase)),
    "ag": MetricSpec("ag", "AG", True, False, _model_metric(M.average_gain)),
    "add": MetricSpec("add", "ADD", True, False, _model_metric(M.average_drop_in_deletion)),
    "insertion": MetricSpec("insertion", "Insertion", True, False, _model_metric(M.insertion_auc, True)),
    "deletion": MetricSpec("deletion", "Deletion", False, False, _model_metric(M.deletion_auc, True)),
    "pointing": MetricSpec("pointing", "Pointing", True, True, _box_metric(M.pointing_game)),
    "energy": MetricSpec("energy", "Energy PG", True, True, _box_metric(M.energy_pointing_game)),
}


def canonical_method(name: str) -> str:
    cls = METHODS.get(name.strip().lower())
    if cls is None:
        raise EvalError(f"unknown method {name!r}; choose from {sorted(METHODS)}")
    return name.strip().lower()


def parse_list(text: str, what: str, known: Sequence[str]) -> list[str]:
    """A comma-separated list, checked against ``known`` (one-line error)."""
    items = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    if not items:
        raise EvalError(f"--{what}: empty list")
    unknown = [t for t in items if t not in known]
    if unknown:
        raise EvalError(f"unknown {what[:-1]}(s) {unknown}; choose from {sorted(known)}")
    if len(set(items)) < len(items):
        raise EvalError(f"--{what}: {items} names one twice")
    return items


@dataclass
class EvalResult:
    """Per-image values (×100) by ``(method, metric)`` (NaN where a metric has no
    ground truth for an image), the targets, and the timings in seconds."""

    names: list[str]
    targets: list[int]
    predicted: list[int]
    methods: list[str]
    metrics: list[str]
    values: dict[tuple[str, str], np.ndarray]
    method_seconds: dict[str, float]
    metric_seconds: dict[tuple[str, str], float]
    total_seconds: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def seconds_per_image(self, method: str) -> float:
        return self.method_seconds[method] / max(len(self.names), 1)

    def metric_totals(self) -> dict[str, float]:
        return {k: sum(v for (_, m), v in self.metric_seconds.items() if m == k) for k in self.metrics}


class _Progress:
    """tqdm when installed, else one line per step on stderr (or nothing)."""

    def __init__(self, total: int, enabled: bool):
        self.bar, self.enabled, self.n, self.total = None, enabled, 0, total
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc="eval", dynamic_ncols=True, file=sys.stderr)
            except ImportError:
                pass

    def step(self, what: str) -> None:
        self.n += 1
        if self.bar is not None:
            self.bar.set_postfix_str(what, refresh=False)
            self.bar.update(1)
        elif self.enabled:
            print(f"  [{self.n}/{self.total}] {what}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(model: nn.Module, x: Tensor, names: Sequence[str], targets: Sequence[int],
             methods: Sequence[str], metrics: Sequence[str], *, layer: Optional[str] = None,
             normalize: Normalize = None, boxes: Optional[Sequence[Sequence]] = None,
             batch_size: int = 32, metric_batch_size: int = 64, steps: int = 224,
             method_options: Optional[dict[str, dict]] = None, progress: bool = False,
             predicted: Optional[Sequence[int]] = None) -> EvalResult:
    """Run ``methods`` on ``x`` (N,3,H,W) in batches of ``batch_size`` images for
    the classes ``targets``, then ``metrics`` on every map. ``boxes``: per image a
    list of boxes in x's pixel coordinates (needed by pointing/energy; an image
    with none gets NaN); ``steps``: insertion/deletion steps. Returns per-image
    values ×100 and timings."""
    N = len(x)
    if N == 0:
        raise EvalError("no readable images to evaluate")
    if len(names) != N or len(targets) != N:
        raise EvalError("names and targets must have one entry per image")
    specs = [METRICS[m] for m in metrics]
    if any(s.needs_boxes for s in specs) and boxes is None:
        need = [s.name for s in specs if s.needs_boxes]
        raise EvalError(f"metric(s) {need} need --boxes")
    device = next(model.parameters()).device
    classes = torch.as_tensor(list(targets), dtype=torch.int64, device=device)
    values = {(m, k): np.full(N, np.nan) for m in methods for k in metrics}
    method_s = {m: 0.0 for m in methods}
    metric_s = {(m, k): 0.0 for m in methods for k in metrics}
    chunks = [(i, min(i + batch_size, N)) for i in range(0, N, batch_size)]
    bar = _Progress(len(chunks) * len(methods) * (1 + len(metrics)), progress)
    t_start = time.perf_counter()
    try:
        explainers = {m: METHODS[m](model, [layer] if layer else None, normalize=normalize,
                                    **(method_options or {}).get(m, {})) for m in methods}
    except (TypeError, ValueError) as e:
        raise EvalError(f"method options: {e}") from None
    try:
        for lo, hi in chunks:
            xb = x[lo:hi].to(device)
            cb = classes[lo:hi]
            bb = None if boxes is None else list(boxes[lo:hi])
            for m in methods:
                _sync(device)
                t0 = time.perf_counter()
                try:
                    maps = explainers[m](xb, cb)
                except ValueError as e:      # e.g. CAM on a model without a linear head
                    raise EvalError(f"method {m}: {e}") from None
                _sync(device)
                method_s[m] += time.perf_counter() - t0
                bar.step(f"{m} [{lo}:{hi}]")
                for spec in specs:
                    t0 = time.perf_counter()
                    v = spec.fn(model, xb, maps, cb, bb, normalize, metric_batch_size, steps)
                    _sync(device)
                    metric_s[(m, spec.name)] += time.perf_counter() - t0
                    values[(m, spec.name)][lo:hi] = 100.0 * v.detach().double().cpu().numpy()
                    bar.step(f"{m} {spec.name}")
    finally:
        bar.close()
    if predicted is None:
        from .models import predict

        predicted = predict(model, x.to(device), normalize).argmax(1).tolist()
    return EvalResult(list(names), [int(t) for t in targets], [int(p) for p in predicted], list(methods), list(metrics),
                      values, method_s, metric_s, time.perf_counter() - t_start)
