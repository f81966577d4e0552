"""Every method on every image (in batches), every metric on every map, with
the time each method and each metric took.

Metric names (reported ×100, but complexity, in nats):

==========  =====================================================  ====
name        definition (:mod:`fastcam.metrics`)                    best
==========  =====================================================  ====
ad          Average Drop (Grad-CAM++ eq. 21)                        low
ai          Average Increase (Grad-CAM++ eq. 22)                    high
ag          Average Gain (Opti-CAM eq. 15)                          high
add         Average Drop in Deletion (LIFT-CAM)                     high
insertion   insertion AUC (RISE, 224 steps at 224²)                 high
deletion    deletion AUC (RISE)                                     low
pointing    pointing game, 15 px tolerance (Zhang et al. 2016)      high
energy      energy-based pointing game (Score-CAM, Wang et al.)     high
road_morf   ROAD, most relevant first: mean probability change      low
            over 10..90 % removed (Rong et al. 2022, noise 0.01)
road_lerf   ROAD, least relevant first                              high
sparseness  Gini index of the map (Chalasani et al. 2020)           high
complexity  entropy of the normalised map, nats (Bhatt et al. 2020) low
relevance_mass_accuracy  mass inside the boxes (Arras et al. 2022)  high
relevance_rank_accuracy  top-K pixels inside the boxes (Arras)      high
==========  =====================================================  ====
"""
from __future__ import annotations

import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .. import metrics as M
from ..engine import Engine, Precision, engine_for
from ..errors import UsageError
from ..inputs import Normalize, normalizer
from ..methods import METHODS
from ..preflight import build_explainer
from .parts import Part, PartStore


@dataclass(frozen=True)
class MetricSpec:
    name: str
    title: str
    higher_is_better: bool
    needs_boxes: bool
    fn: Optional[Callable]       # None: a confidence metric, computed with the others
                                 # of its kind by one metrics.confidence_changes call
    scale: float = 100.0         # the table's unit: ×100 for shares, 1 for nats


def _curve_metric(fn):
    def run(model, x, maps, classes, boxes, normalize, batch_size, steps):
        return fn(model, x, maps, classes, normalize=normalize, batch_size=batch_size, steps=steps)
    return run


def _box_metric(fn):
    def run(model, x, maps, classes, boxes, normalize, batch_size, steps):
        return fn(maps, boxes)
    return run


def _road_metric(order):
    def run(model, x, maps, classes, boxes, normalize, batch_size, steps):
        return M.road(model, x, maps, classes, order=order, normalize=normalize, batch_size=batch_size)
    return run


def _map_metric(fn):
    def run(model, x, maps, classes, boxes, normalize, batch_size, steps):
        return fn(maps)
    return run


METRICS: dict[str, MetricSpec] = {
    "ad": MetricSpec("ad", "AD", False, False, None),
    "ai": MetricSpec("ai", "AI", True, False, None),
    "ag": MetricSpec("ag", "AG", True, False, None),
    "add": MetricSpec("add", "ADD", True, False, None),
    "insertion": MetricSpec("insertion", "Insertion", True, False, _curve_metric(M.insertion_auc)),
    "deletion": MetricSpec("deletion", "Deletion", False, False, _curve_metric(M.deletion_auc)),
    "pointing": MetricSpec("pointing", "Pointing", True, True, _box_metric(M.pointing_game)),
    "energy": MetricSpec("energy", "Energy PG", True, True, _box_metric(M.energy_pointing_game)),
    "road_morf": MetricSpec("road_morf", "ROAD MoRF", False, False, _road_metric("morf")),
    "road_lerf": MetricSpec("road_lerf", "ROAD LeRF", True, False, _road_metric("lerf")),
    "sparseness": MetricSpec("sparseness", "Sparseness", True, False, _map_metric(M.sparseness)),
    "complexity": MetricSpec("complexity", "Complexity", False, False, _map_metric(M.complexity), scale=1.0),
    "relevance_mass_accuracy": MetricSpec("relevance_mass_accuracy", "Rel. mass", True, True,
                                          _box_metric(M.relevance_mass_accuracy)),
    "relevance_rank_accuracy": MetricSpec("relevance_rank_accuracy", "Rel. rank", True, True,
                                          _box_metric(M.relevance_rank_accuracy)),
}


def parse_list(text: str, what: str, known: Sequence[str]) -> list[str]:
    """A comma-separated list, checked against ``known`` (one-line error)."""
    items = [t.strip().lower() for t in str(text).split(",") if t.strip()]
    if not items:
        raise UsageError(f"--{what}: empty list")
    unknown = [t for t in items if t not in known]
    if unknown:
        raise UsageError(f"unknown {what[:-1]}(s) {unknown}; choose from {sorted(known)}")
    if len(set(items)) < len(items):
        raise UsageError(f"--{what}: {items} names one twice")
    return items


@dataclass
class EvalResult:
    """Per-image values (×100; complexity in nats) by ``(method, metric)`` (NaN where a metric has no
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
    resumed_parts: int = 0       # parts read back from a PartStore instead of computed

    def seconds_per_image(self, method: str) -> float:
        return self.method_seconds[method] / max(len(self.names), 1)

    def metric_totals(self) -> dict[str, float]:
        return {k: sum(v for (_, m), v in self.metric_seconds.items() if m == k) for k in self.metrics}


def predict(model: Union[nn.Module, Engine], x: Tensor, normalize: Normalize, batch_size: int = 32,
            precision: Optional[Precision] = None) -> Tensor:
    """Softmax probabilities (B, classes) of the clean images (the model run by
    its :class:`~fastcam.engine.Engine`, in ``precision``)."""
    norm, engine = normalizer(normalize, x), engine_for(model, precision)
    with torch.inference_mode():
        return torch.cat([engine.forward(norm(x[i:i + batch_size])).softmax(1)
                          for i in range(0, len(x), batch_size)])


def _step(bar: tqdm, what: str) -> None:
    bar.set_postfix_str(what, refresh=False)
    bar.update(1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(model: nn.Module, x: Tensor, names: Sequence[str], targets: Sequence[int],
             methods: Sequence[str], metrics: Sequence[str], *, layer: Optional[str] = None,
             normalize: Normalize = None, boxes: Optional[Sequence[Sequence]] = None,
             batch_size: int = 32, metric_batch_size: int = 64, steps: int = 224,
             method_options: Optional[dict[str, dict]] = None, progress: bool = False,
             predicted: Optional[Sequence[int]] = None, precision: Precision = "fp32",
             parts: Optional[PartStore] = None,
             stored: Optional[dict[str, Callable[[int, int], tuple[Tensor, float]]]] = None) -> EvalResult:
    """Run ``methods`` on ``x`` (N,3,H,W) in batches of ``batch_size`` images for
    the classes ``targets``, then ``metrics`` on every map. ``boxes``: per image a
    list of boxes in x's pixel coordinates (needed by pointing/energy; an image
    with none gets NaN); ``steps``: insertion/deletion steps. Returns per-image
    values ×100 and timings. ``precision``: how the model runs, for the methods
    and the metrics alike (:mod:`fastcam.engine`).

    The work runs in parts, one method on one chunk of ``batch_size`` images,
    each under its own seed (:func:`part_seed`), so a part's values do not
    depend on the parts run before it. ``parts``: where each part is committed
    as it finishes (:class:`~fastcam.evaluation.parts.PartStore`); a part it
    already holds is read back instead of recomputed (with its timings).

    ``stored``: methods whose maps are read instead of computed (``fastcam eval
    --maps``): ``stored[m](lo, hi)`` returns the float32 maps of images lo:hi
    and the seconds computing them took (:meth:`~fastcam.evaluation.stored.StoredMaps.source`),
    which the table reports as the method's time."""
    N = len(x)
    if N == 0:
        raise UsageError("no readable images to evaluate")
    if len(names) != N or len(targets) != N:
        raise UsageError("names and targets must have one entry per image")
    specs = [METRICS[m] for m in metrics]
    if any(s.needs_boxes for s in specs) and boxes is None:
        need = [s.name for s in specs if s.needs_boxes]
        raise UsageError(f"metric(s) {need} need --boxes")
    device = next(model.parameters()).device
    classes = torch.as_tensor(list(targets), dtype=torch.int64, device=device)
    values = {(m, k): np.full(N, np.nan) for m in methods for k in metrics}
    method_s = {m: 0.0 for m in methods}
    metric_s = {(m, k): 0.0 for m in methods for k in metrics}
    chunks = [(i, min(i + batch_size, N)) for i in range(0, N, batch_size)]
    confidence = [s.name for s in specs if s.fn is None]
    others = [s for s in specs if s.fn is not None]
    steps_per_map = 1 + len(others) + bool(confidence)
    bar = tqdm(total=len(chunks) * len(methods) * steps_per_map, desc="eval", dynamic_ncols=True,
               file=sys.stderr, disable=not progress)
    t_start = time.perf_counter()
    stored = dict(stored or {})
    explainers = {m: build_explainer(METHODS[m], model, layer, normalize, (method_options or {}).get(m),
                                     precision=precision)
                  for m in methods if m not in stored}
    engine = Engine(model, precision=precision)     # the metrics' passes

    def _run_part(m: str, lo: int, hi: int, xb: Tensor, cb: Tensor, bb) -> tuple[float, dict[str, float]]:
        """Method m and every metric on images lo:hi; fills ``values`` and returns
        the seconds (method, per metric) this part took."""
        spent: dict[str, float] = {}
        if m in stored:
            maps, method_seconds = stored[m](lo, hi)
            maps = maps.to(device)
        else:
            _sync(device)
            t0 = time.perf_counter()
            try:
                maps = explainers[m](xb, cb)
            except ValueError as e:      # e.g. CAM on a model without a linear head
                raise UsageError(f"method {m}: {e}") from None
            _sync(device)
            method_seconds = time.perf_counter() - t0
        _step(bar, f"{m} [{lo}:{hi}]")
        if confidence:   # one clean and one or two masked passes for all of them
            t0 = time.perf_counter()
            got = M.confidence_changes(engine, xb, maps, cb, normalize=normalize,
                                       batch_size=metric_batch_size, which=confidence)
            _sync(device)
            share = (time.perf_counter() - t0) / len(confidence)
            for k, v in got.items():
                spent[k] = share
                values[(m, k)][lo:hi] = 100.0 * v.detach().double().cpu().numpy()
            _step(bar, f"{m} {','.join(confidence)}")
        for spec in others:
            t0 = time.perf_counter()
            v = spec.fn(engine, xb, maps, cb, bb, normalize, metric_batch_size, steps)
            _sync(device)
            spent[spec.name] = time.perf_counter() - t0
            values[(m, spec.name)][lo:hi] = spec.scale * v.detach().double().cpu().numpy()
            _step(bar, f"{m} {spec.name}")
        method_s[m] += method_seconds
        for k, sec in spent.items():
            metric_s[(m, k)] += sec
        return method_seconds, spent

    resumed = 0
    cuda = [device.index or 0] if device.type == "cuda" else []
    try:
        for lo, hi in chunks:
            xb = x[lo:hi].to(device)
            cb = classes[lo:hi]
            bb = None if boxes is None else list(boxes[lo:hi])
            for m in methods:
                done = parts.load(lo, hi, m, list(names[lo:hi])) if parts is not None else None
                if done is not None:
                    resumed += 1
                    method_s[m] += done.method_seconds
                    for k in metrics:
                        values[(m, k)][lo:hi] = done.values[k]
                        metric_s[(m, k)] += done.metric_seconds.get(k, 0.0)
                    bar.update(steps_per_map)
                    continue
                with torch.random.fork_rng(devices=cuda):
                    torch.manual_seed(part_seed(m, lo))
                    spent = _run_part(m, lo, hi, xb, cb, bb)
                if parts is not None:
                    parts.commit(Part(lo, hi, m, list(names[lo:hi]),
                                      {k: values[(m, k)][lo:hi].copy() for k in metrics}, spent[0], spent[1]))
    finally:
        bar.close()
    if predicted is None:
        predicted = predict(engine, x.to(device), normalize).argmax(1).tolist()
    return EvalResult(list(names), [int(t) for t in targets], [int(p) for p in predicted], list(methods),
                      list(metrics), values, method_s, metric_s, time.perf_counter() - t_start,
                      resumed_parts=resumed)


def part_seed(method: str, lo: int) -> int:
    """The seed of the part of ``method`` on the chunk starting at image ``lo``."""
    return zlib.crc32(f"{method}:{lo}".encode())
