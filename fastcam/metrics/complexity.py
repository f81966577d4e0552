"""Complexity metrics: how concentrated a saliency map is. They read the map alone
(no model, no ground truth).

* Sparseness (Chalasani et al., "Concise Explanations of Neural Networks using
  Adversarial Training", ICML 2020, Sec. 5.2): the Gini index of the map's
  absolute values (Hurley & Rickard 2009, their eq. for ``G``): with the ``N``
  values sorted ascending ``a_(1) ≤ … ≤ a_(N)``,
  ``G = Σ_k (2k − N − 1) a_(k) / (N Σ_k a_(k))``, in ``[0, 1 − 1/N]``: 0 for a
  constant map, ``1 − 1/N`` for a map with one non-zero pixel. Higher is sparser.
* Complexity (Bhatt, Weller, Moura, "Evaluating and Aggregating Feature-based
  Model Explanations", IJCAI 2020, Def. 4): the Shannon entropy (nats) of the
  fractional contributions ``p_i = |a_i| / Σ_j |a_j|``, ``−Σ p_i ln p_i`` with
  ``0 ln 0 = 0``, in ``[0, ln N]``. Lower is simpler.

Both are scale invariant, so a map's normalisation (min-max, by its maximum)
does not change them. A map that is zero everywhere has no distribution: its
sparseness is 0 (the limit of a constant map) and its complexity NaN.

Quantus 0.6 (``quantus.Sparseness``, ``quantus.Complexity``, defaults ``abs=True``,
``normalise=True``) computes the same quantities with two numerical guards that
fastcam leaves out: it adds 1e-7 to every value before the Gini index, and
takes ``ln(p + 1e-12)`` in the entropy; on maps in [0, 1] the values differ by
less than 1e-5 (``tests/metrics/test_quantus_parity.py``). On an all-zero map
Quantus's complexity is NaN too (0/0), its sparseness 0.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sparseness", "complexity"]


def _check(maps: Tensor) -> Tensor:
    if not isinstance(maps, Tensor) or maps.dim() != 3:
        raise ValueError(f"maps must be (B,H,W), got {tuple(getattr(maps, 'shape', ()))}")
    if not maps.is_floating_point():
        raise ValueError(f"maps must be floating point, got {maps.dtype}")
    if not bool(torch.isfinite(maps).all()):
        raise ValueError("maps contain NaN or infinite values")
    return maps.flatten(1).abs().to(torch.float64)


def sparseness(maps: Tensor) -> Tensor:
    """Gini index of each map's absolute values (B,H,W) → (B,) float32, on the
    maps' device (see the module doc); higher is sparser, 0 for a constant or
    all-zero map."""
    a = _check(maps).sort(dim=1).values
    n = a.shape[1]
    k = torch.arange(1, n + 1, device=a.device, dtype=a.dtype)
    total = a.sum(1)
    num = ((2 * k - n - 1) * a).sum(1)
    out = torch.where(total > 0, num / (n * torch.where(total > 0, total, 1)), 0.0)
    return out.to(torch.float32)


def complexity(maps: Tensor) -> Tensor:
    """Entropy (nats) of each map's normalised absolute values (B,H,W) → (B,)
    float32, on the maps' device (see the module doc); lower is simpler, NaN for
    an all-zero map."""
    a = _check(maps)
    total = a.sum(1, keepdim=True)
    p = a / torch.where(total > 0, total, 1)
    h = -torch.where(p > 0, p * torch.log(torch.where(p > 0, p, 1)), 0.0).sum(1)
    return torch.where(total[:, 0] > 0, h, float("nan")).to(torch.float32)
