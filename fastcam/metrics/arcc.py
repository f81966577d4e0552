"""ARCC: the harmonic mean of Coherency, 1 − Complexity and ROAD, per image (the
aggregate pytorch-grad-cam 1.5.7 introduced; Complexity and Coherency after Rong et
al., "A Consistent and Efficient Evaluation Strategy for Attribution Methods",
arXiv 2104.10252).

With maps S (B, H, W) in [0, 1]:

* Coherency ``(ρ(S', S) + 1) / 2``: ρ the Pearson correlation of S with the maps S'
  the same explainer gives for the masked image ``x ⊙ S`` (an explanation should
  explain its own evidence the same way); in [0, 1], higher is better.
* Complexity ``Σ|S| / (H·W)``: the maps' L1 norm per pixel; lower is better (a
  sparse map). It is ARCC's own term, not a metric of its own.
* ROAD: :func:`fastcam.metrics.road` with ``order="combined"``, rescaled to
  ``clip(2·ROAD, 0, 1)``.

``ARCC = 3 / (1/(coh + ε) + 1/(1 − cplx + ε) + 1/(road + ε))`` with ε = 1e-8, in
float64 — higher is better.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..engine import Engine, Precision, engine_for
from ..inputs import Normalize, normalizer
from ..perturbation.masked_scores import Score
from ..targets import TargetSpec, resolve_targets
from ._common import check_maps
from .road import road

#: the guard against a zero standard deviation (Pearson) and a zero term (the harmonic mean)
EPS = 1e-8

#: ``explainer(x, targets) -> maps (B, H, W)`` at x's resolution: a fastcam explainer
Explainer = Callable[[Tensor, TargetSpec], Tensor]


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise Pearson correlation of (B, N) tensors: ``cov / (σ_a σ_b + 1e-8)`` with
    the unbiased (N − 1) covariance and standard deviations."""
    n = a.shape[1]
    if n < 2:
        raise ValueError("a Pearson correlation needs at least 2 values per map")
    ac = a - a.mean(dim=1, keepdim=True)
    bc = b - b.mean(dim=1, keepdim=True)
    cov = (ac * bc).sum(dim=1) / (n - 1)
    sa = ((ac ** 2).sum(dim=1) / (n - 1)).sqrt()
    sb = ((bc ** 2).sum(dim=1) / (n - 1)).sqrt()
    return cov / (sa * sb + EPS)


def l1_per_pixel(maps: Tensor) -> Tensor:
    """ARCC's complexity term: ``Σ|S| / N`` of each row of ``maps`` (B, ...) flattened
    (0 for an all-zero map, 1 for an all-one map)."""
    flat = maps.reshape(maps.shape[0], -1)
    return flat.abs().sum(dim=1) / flat.shape[1]


def coherency_of(maps: Tensor, remaps: Tensor) -> Tensor:
    """``(ρ(S', S) + 1) / 2`` per image for maps S and the maps S' of ``x ⊙ S``."""
    b = maps.shape[0]
    return (pearson(remaps.reshape(b, -1).to(maps.dtype), maps.reshape(b, -1)) + 1) / 2


def harmonic_arcc(coherency: Tensor, complexity: Tensor, road_combined: Tensor) -> Tensor:
    """``3 / (1/(coh + ε) + 1/(1 − cplx + ε) + 1/(clip(2·road, 0, 1) + ε))`` in float64."""
    coh, cplx = coherency.double(), complexity.double()
    r = (road_combined.double() * 2).clamp(0, 1)
    return 3 / (1 / (coh + EPS) + 1 / ((1 - cplx) + EPS) + 1 / (r + EPS))


def arcc(model: Union[nn.Module, Engine], x: Tensor, maps: Tensor, targets: TargetSpec = None, *,
         explainer: Explainer, normalize: Normalize = None, percentiles: Sequence[float] = (20, 40, 60, 80),
         batch_size: int = 32, score: Score = "probability", noise: float = 0.01, tol: float = 1e-4,
         max_iter: int = 50, generator: Optional[torch.Generator] = None, chunk_elements: int = 1 << 20,
         precision: Optional[Precision] = None, return_terms: bool = False
         ) -> Union[Tensor, tuple[Tensor, dict[str, Tensor]]]:
    """ARCC per image (B,), float64 (see the module docstring; higher is better).

    ``explainer``: the method that made ``maps``, called once as
    ``explainer(x ⊙ S, classes)`` for the coherency term (a fastcam explainer; with
    ``normalize`` it gets the masked pixel-space image and must normalise as
    configured). ``targets`` are resolved on the clean images (None: the predicted
    class) and the explainer gets those classes. The ROAD term is
    :func:`~fastcam.metrics.road` over ``percentiles`` with ``score``, ``noise``,
    ``tol``, ``max_iter``, ``generator``, ``chunk_elements``. ``return_terms`` also
    returns ``{"coherency", "l1_per_pixel", "road"}`` (B,) each."""
    if not callable(explainer):
        raise TypeError(f"explainer must be a CAM explainer (callable), got {type(explainer).__name__}")
    maps = check_maps(x, maps)
    engine = engine_for(model, precision)
    norm = normalizer(normalize, x)
    with torch.inference_mode():
        logits = torch.cat([engine.forward(norm(x[s:s + batch_size])) for s in range(0, len(x), batch_size)])
    resolved = resolve_targets(targets, logits)
    classes = resolved.callables if resolved.callables is not None else resolved.indices
    remaps = torch.as_tensor(explainer(x * maps[:, None], classes)).to(maps.device)
    if remaps.shape != maps.shape:
        raise ValueError(f"the explainer returned maps of shape {tuple(remaps.shape)}, "
                         f"expected {tuple(maps.shape)}")
    coherency = coherency_of(maps.float(), remaps.float())
    complexity = l1_per_pixel(maps)
    road_combined = road(engine, x, maps, classes, order="combined", percentiles=percentiles,
                         normalize=normalize, batch_size=batch_size, score=score, noise=noise, tol=tol,
                         max_iter=max_iter, generator=generator, chunk_elements=chunk_elements)
    value = harmonic_arcc(coherency, complexity, road_combined)
    if return_terms:
        return value, {"coherency": coherency, "l1_per_pixel": complexity, "road": road_combined}
    return value
