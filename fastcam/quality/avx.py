"""The AVX score of ADVISE (Dehshibi et al.) on pairs of maps: the computation
that the ADVISE method (which keeps the candidate map with the best AVX,
:mod:`fastcam.methods.advise`) and the AVX metric (:mod:`fastcam.metrics.avx`,
whose docstring gives the definition and the official code's choices) share.

Why a package of its own: ``fastcam.metrics`` sits above ``fastcam.methods``
(the sanity check runs methods by name), so a method may not import a metric;
the score both need lives here, below both, and imports only the engine (the
masked images' forward passes) and the input conventions.
"""
from __future__ import annotations

from typing import NamedTuple, Union

import torch
from torch import Tensor, nn

from ..engine import Engine, engine_for
from ..inputs import HALF, Normalize, normalizer

#: |Pearson(Mx, Mn)| at or below this value is "class-sensitive" (official code)
CLASS_SENSITIVITY_THRESHOLD = 0.55
#: the top-k of the masked image that must contain c1 for a hit (official code)
HIT_TOP_K = 5


class AVXComponents(NamedTuple):
    """Every term of AVX, per map pair (all (N,) tensors on x's device).

    ``ad``, ``ssim``, ``fsim`` and ``mse`` are the values after the miss
    penalty (the ones the harmonic mean uses); ``*_raw`` before it."""

    avx: Tensor
    ad: Tensor
    ssim: Tensor
    fsim: Tensor
    mse: Tensor
    hit: Tensor               # bool
    class_sensitive: Tensor   # bool
    pearson: Tensor           # NaN reported as 0 (official)
    yc: Tensor
    oc: Tensor
    ad_raw: Tensor
    ssim_raw: Tensor
    fsim_raw: Tensor
    mse_raw: Tensor


def _piq():
    try:
        import piq
    except ImportError as e:  # pragma: no cover - piq is a dependency
        raise ImportError("AVX needs the piq package for SSIM and FSIM: pip install piq") from e
    return piq


def pearson(a: Tensor, b: Tensor) -> Tensor:
    """Pearson correlation of each pair of maps (N, H, W) over all pixels, in
    float64; NaN where a map is constant (as MATLAB's ``corrcoef``)."""
    a = a.reshape(a.shape[0], -1).double()
    b = b.reshape(b.shape[0], -1).double()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / torch.sqrt((a * a).sum(1) * (b * b).sum(1))


def _harmonic_mean(terms: list[Tensor]) -> Tensor:
    v = torch.stack(terms)                                   # (4, N)
    ok = (v > 0).all(0)
    safe = torch.where(v > 0, v, torch.ones_like(v))
    return torch.where(ok, len(terms) / (1 / safe).sum(0), torch.zeros_like(safe[0]))


def _pixel_pair(x: Tensor, xm: Tensor, normalize: Normalize) -> tuple[Tensor, Tensor]:
    """The image and its masked copy in [0, 1] pixels for SSIM/FSIM/MSE."""
    if normalize is not None:
        if bool((x < 0).any()) or bool((x > 1).any()):
            raise ValueError("with normalize=(mean, std) the images must be pixel-space in [0, 1]")
        return x, xm
    lo = x.amin(dim=(1, 2, 3), keepdim=True).clamp(max=0)
    hi = x.amax(dim=(1, 2, 3), keepdim=True).clamp(min=0)
    inside = (lo >= 0) & (hi <= 1)
    rng = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    lo = torch.where(inside, torch.zeros_like(lo), lo)
    rng = torch.where(inside, torch.ones_like(rng), rng)
    return ((x - lo) / rng).clamp(0, 1), ((xm - lo) / rng).clamp(0, 1)


def avx_of_pairs(model: Union[nn.Module, Engine], x: Tensor, map_c1: Tensor, map_c2: Tensor,
                 index: Tensor, c1: Tensor, yc: Tensor, *, normalize: Normalize = None,
                 batch_size: int = 32, nan_class_sensitive: bool = False) -> AVXComponents:
    """Every term of AVX for N map pairs of a batch — ADVISE scores all candidate
    maps of all images this way: pair n (``map_c1[n]``, ``map_c2[n]``, (N,H,W))
    belongs to image ``x[index[n]]`` and explains class ``c1[n]``, whose
    probability on the clean image is ``yc[n]``. Masked images go through the
    model ``batch_size`` at a time (never all materialised). The maps are not
    checked here (:func:`avx_components` checks per-image maps)."""
    piq = _piq()
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    N = map_c1.shape[0]
    dev = x.device
    norm = normalizer(normalize, x)
    r = pearson(map_c1, map_c2)
    sensitive = r.abs() <= CLASS_SENSITIVITY_THRESHOLD
    if nan_class_sensitive:
        sensitive |= torch.isnan(r)
    r = torch.nan_to_num(r, nan=0.0)
    oc, hit, ssim, fsim, mse = [], [], [], [], []
    engine = engine_for(model)
    with torch.inference_mode():
        for i in range(0, N, batch_size):
            idx = index[i:i + batch_size]
            xs = x[idx]
            mask = (map_c1[i:i + batch_size] >= 0.5).to(x.dtype)
            xm = xs * mask[:, None]
            probs = engine.forward(norm(xm)).softmax(1)
            oc.append(probs.amax(1))
            top = probs.topk(min(HIT_TOP_K, probs.shape[1]), dim=1).indices
            hit.append((top == c1[i:i + batch_size, None]).any(1))
            ps, pm = _pixel_pair(xs.float(), xm.float(), normalize)   # piq's FSIM needs fp32
            ssim.append(piq.ssim(pm, ps, data_range=1.0, reduction="none", downsample=False))
            fsim.append(piq.fsim(pm, ps, data_range=1.0, reduction="none",
                                 chromatic=x.shape[1] == 3))
            mse.append(((pm - ps) ** 2).mean(dim=(1, 2, 3)))
    dt = torch.float32 if x.dtype in HALF else x.dtype
    if N == 0:
        empty = torch.zeros(0, dtype=dt, device=dev)
        flag = torch.zeros(0, dtype=torch.bool, device=dev)
        return AVXComponents(empty, empty, empty, empty, empty, flag, flag, empty, empty, empty,
                             empty, empty, empty, empty)
    oc = torch.cat(oc).to(dt)
    hit = torch.cat(hit)
    ssim_raw, fsim_raw, mse_raw = (torch.cat(v).to(dt) for v in (ssim, fsim, mse))
    yc = yc.to(dt)
    ad_raw = torch.clamp(yc - oc, min=0) / yc
    factor = 1 - (yc - oc).abs()
    miss_s = ~hit & sensitive          # penalised by 1 − |yc − oc|
    miss_n = ~hit & ~sensitive         # the worst values
    one, zero = torch.ones_like(ad_raw), torch.zeros_like(ad_raw)
    ad = torch.where(miss_s, ad_raw * factor, torch.where(miss_n, one, ad_raw))
    ssim_ = torch.where(miss_s, ssim_raw * factor, torch.where(miss_n, zero, ssim_raw))
    fsim_ = torch.where(miss_s, fsim_raw * factor, torch.where(miss_n, zero, fsim_raw))
    mse_ = torch.where(miss_s, mse_raw * factor, torch.where(miss_n, one, mse_raw))
    score = _harmonic_mean([ssim_, fsim_, 1 - mse_, 1 - ad])
    return AVXComponents(score, ad, ssim_, fsim_, mse_, hit, sensitive, r.to(dt), yc, oc,
                         ad_raw, ssim_raw, fsim_raw, mse_raw)
