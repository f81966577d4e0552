"""ROAD — RemOve And Debias (Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and
Efficient Evaluation Strategy for Attribution Methods", ICML 2022).

For a percentile p and a removal order, each image keeps the pixels whose ranking
value is below the image's p-th percentile (NumPy's linear ``np.percentile``) and
the others are removed:

* MoRF (most relevant first): ranking ``S``; p = 80 removes the 20 % most relevant;
* LeRF (least relevant first): ranking ``1 − S``; p = 20 removes the 80 % least relevant.

The removed pixels are filled by the paper's noisy linear imputation (Eq. 4;
:func:`fastcam.perturbation.noisy_linear_imputation`: each removed pixel is the
weighted mean of its 8 neighbours, plus Gaussian noise of std ``noise``), which
removes the information without the distribution shift of a constant fill. The
per-image value is the change of the target score ``s(imputed) − s(x)``; a curve is
these changes over ``percentiles``, the metric their mean. ``order="combined"``
gives ``(mean_LeRF − mean_MoRF) / 2`` (higher is better: removing the least
relevant pixels keeps the score, removing the most relevant drops it) — the
combination pytorch-grad-cam 1.5.7 calls ``ROADCombined``.

Quantus 0.6's ``quantus.ROAD`` differs: MoRF only; it removes the
``int(H·W·p/100)`` top pixels of NumPy's ``argsort`` (ties in its order) rather than a
percentile threshold; its curve is the share of images whose predicted class
stays the label (the paper's accuracy curve), not a score change; and it runs
only on one-channel images (it indexes the flattened ``H·W`` image with indices of
the map broadcast over the channels). Its imputation is the same linear system,
solved directly: on the same removals, with noise 0 and the target "is the argmax
the label" (a target callable), :func:`road_changes` gives its curve
(``tests/metrics/test_quantus_parity.py``).

All (percentile, order, image) imputations run batched on the input's device,
``chunk_elements`` values solved at once; every model pass goes through
:class:`fastcam.engine.Engine` under inference mode, ``batch_size`` images at a time.
"""
from __future__ import annotations

from typing import Literal, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from ..engine import Engine, Precision, ScoreFn, engine_for
from ..inputs import Normalize, normalizer
from ..progress import scope, track
from ..perturbation.masked_scores import Score, callable_score, class_score
from ..perturbation.noisy_linear_imputation import noisy_linear_imputation
from ..targets import TargetSpec, Targets, resolve_targets
from ._common import check_maps

Order = Literal["morf", "lerf"]
ORDERS: tuple[str, ...] = ("morf", "lerf")
#: the percentiles of the paper's curves and of pytorch-grad-cam's averages
PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


def percentile_threshold(values: Tensor, percentile: float) -> Tensor:
    """Per-row ``np.percentile(values[i], percentile)`` (linear method), on the device.

    Reproduces NumPy ≥ 2 bit for bit for float32/float64 rows: the virtual index
    ``(n−1)·q/100`` and its fraction γ are computed in float64, the interpolation in
    the values' dtype as NumPy's ``_lerp`` does (``b − (b−a)(1−γ)`` when γ ≥ ½)."""
    flat = values.flatten(1)
    n = flat.shape[1]
    q = float(percentile) / 100.0
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    virtual = (n - 1) * q
    lo = min(int(np.floor(virtual)), n - 1)
    hi = min(lo + 1, n - 1)
    gamma = virtual - lo
    ordered = torch.sort(flat, dim=1).values
    a, b = ordered[:, lo], ordered[:, hi]
    diff = b - a
    if gamma >= 0.5:
        return b - diff * torch.tensor(1.0 - gamma, dtype=flat.dtype, device=flat.device)
    return a + diff * torch.tensor(gamma, dtype=flat.dtype, device=flat.device)


def ranking(maps: Tensor, order: str) -> Tensor:
    """The values pixels are removed by: ``S`` for MoRF, ``1 − S`` for LeRF."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    return maps if order == "morf" else 1 - maps


def keep_mask(maps: Tensor, percentile: float, order: str) -> Tensor:
    """(B, H, W) bool, True on the kept pixels: ranking below its per-image
    ``percentile``-th percentile (p % of the pixels kept, the rest removed)."""
    values = ranking(maps, order)
    return values < percentile_threshold(values, percentile)[:, None, None]


def score_function(resolved: Targets, score: Score) -> ScoreFn:
    """``score_fn(outputs, image_index)`` of resolved targets: the class's logit or
    softmax probability, or a target callable applied to the raw output row."""
    if resolved.callables is not None:
        return callable_score(resolved.callables)
    return class_score(resolved.indices, score)


def _outputs(engine: Engine, images: Tensor, norm, batch_size: int) -> Tensor:
    with torch.inference_mode():
        return torch.cat([engine.forward(norm(images[s:s + batch_size]))
                          for s in range(0, images.shape[0], batch_size)])


def road_changes(model: Union[nn.Module, Engine], x: Tensor, keeps: Tensor, targets: TargetSpec = None, *,
                 normalize: Normalize = None, batch_size: int = 32, score: Score = "probability",
                 noise: float = 0.01, tol: float = 1e-4, max_iter: int = 50,
                 generator: Optional[torch.Generator] = None, chunk_elements: int = 1 << 20,
                 precision: Optional[Precision] = None, return_images: bool = False,
                 progress: Optional[bool] = None) -> Union[Tensor, tuple[Tensor, Tensor]]:
    """Score changes (R, B) of the images imputed where ``keeps`` (R, B, H, W) is
    False: ``s(impute(x, keeps[r])_i) − s(x_i)``. The clean scores are computed once;
    the R·B imputations run a chunk of whole model batches (≈ ``chunk_elements``
    values) at a time. ``return_images`` also returns the imputed images (R, B, C, H, W).

    ``targets`` are resolved on the clean images (None: each image's predicted class);
    ``score``: ``"probability"`` (softmax, default) or ``"logit"`` of the class; B
    callables get the raw output row instead. ``normalize=(mean, std)``: x is
    pixel-space in [0, 1], imputed there, and normalised for the model. ``progress``:
    a bar over the chunks of imputations (None: when stderr is a terminal)."""
    with scope(progress, "ROAD"):
        return _road_changes(model, x, keeps, targets, normalize, batch_size, score, noise, tol,
                             max_iter, generator, chunk_elements, precision, return_images)


def _road_changes(model, x, keeps, targets, normalize, batch_size, score, noise, tol, max_iter,
                  generator, chunk_elements, precision, return_images):
    engine = engine_for(model, precision)
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"x must be (B, C, H, W), got {tuple(getattr(x, 'shape', ()))}")
    b, c, h, w = x.shape
    keeps = torch.as_tensor(keeps, device=x.device)
    if keeps.dim() != 4 or tuple(keeps.shape[1:]) != (b, h, w):
        raise ValueError(f"keeps must be (R, B, H, W) with (B, H, W) = {(b, h, w)}, "
                         f"got {tuple(keeps.shape)}")
    if isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    norm = normalizer(normalize, x)
    clean = _outputs(engine, x, norm, batch_size)
    resolved = resolve_targets(targets, clean)
    score_fn = score_function(resolved, score)
    image = torch.arange(b, device=x.device)
    base = score_fn(clean, image)
    keeps = keeps.reshape(-1, h, w) != 0
    n = keeps.shape[0]
    group = batch_size * max(1, -(-max(1, chunk_elements // (c * h * w)) // batch_size))
    scores: list[Tensor] = []
    images: list[Tensor] = []
    for s in track(range(0, n, group), unit="chunk"):
        rows = torch.arange(s, min(n, s + group), device=x.device)
        with torch.inference_mode():
            imputed = noisy_linear_imputation(x[rows % b], keeps[rows], noise, tol=tol, max_iter=max_iter,
                                              generator=generator, chunk_elements=chunk_elements)
        scores.append(score_fn(_outputs(engine, imputed, norm, batch_size), rows % b))
        if return_images:
            images.append(imputed)
    changes = torch.cat(scores).reshape(-1, b) - base
    if return_images:
        return changes, torch.cat(images).reshape(-1, b, c, h, w)
    return changes


def road(model: Union[nn.Module, Engine], x: Tensor, maps: Tensor, targets: TargetSpec = None, *,
         order: Literal["morf", "lerf", "combined"] = "combined", percentiles: Sequence[float] = PERCENTILES,
         normalize: Normalize = None, batch_size: int = 32, score: Score = "probability",
         noise: float = 0.01, tol: float = 1e-4, max_iter: int = 50,
         generator: Optional[torch.Generator] = None, chunk_elements: int = 1 << 20,
         precision: Optional[Precision] = None, return_curve: bool = False,
         progress: Optional[bool] = None) -> Union[Tensor, tuple[Tensor, Tensor]]:
    """ROAD per image (B,): the mean score change over ``percentiles`` for ``order``
    ``"morf"`` (lower is better) or ``"lerf"`` (higher is better), or
    ``"combined"`` = ``(LeRF − MoRF) / 2`` (higher is better; default).

    ``maps`` (B, H, W) at x's resolution (the ranking; only their order matters).
    ``return_curve`` also returns the score changes (P, B) — (2, P, B), MoRF first,
    for ``"combined"``. ``noise``/``tol``/``max_iter``/``generator``/``chunk_elements``:
    the imputation's (noise 0 makes the metric deterministic); ``precision``: how the
    model runs (:mod:`fastcam.engine`). Other arguments as :func:`road_changes`."""
    if order not in ORDERS + ("combined",):
        raise ValueError(f"order must be 'morf', 'lerf' or 'combined', got {order!r}")
    maps = check_maps(x, maps)
    percentiles = list(percentiles)
    if not percentiles:
        raise ValueError("percentiles must not be empty")
    orders = ORDERS if order == "combined" else (order,)
    with torch.inference_mode():
        keeps = torch.stack([keep_mask(maps, p, o) for o in orders for p in percentiles])
    curve = road_changes(model, x, keeps, targets, normalize=normalize, batch_size=batch_size, score=score,
                         noise=noise, tol=tol, max_iter=max_iter, generator=generator,
                         chunk_elements=chunk_elements, precision=precision, progress=progress)
    curve = curve.reshape(len(orders), len(percentiles), x.shape[0])
    means = curve.mean(dim=1)
    value = (means[1] - means[0]) / 2 if order == "combined" else means[0]
    if return_curve:
        return value, curve if order == "combined" else curve[0]
    return value
