"""ADVISE's AVX score (Dehshibi et al., arXiv 2203.01289 / The Visual Computer 2024).

AVX rates one explanation by a pair of maps of the same image: ``Mx`` for the
class it explains (c1, the top-1 class by default) and ``Mn`` for the runner-up
class (c2). It follows the authors' MATLAB evaluation (their code is the only
complete description):

* class-sensitive ⇔ ``|Pearson(Mx, Mn)| ≤ 0.55`` over all pixels. A NaN
  correlation (a constant map) is *not* class-sensitive — the official code
  compares first and replaces the NaN by 0 only in the reported value
  (``pearson`` below is that reported value); ``nan_class_sensitive=True``
  counts it as class-sensitive instead (correlation read as 0).
* masked image ``x ⊙ 1[Mx ≥ 0.5]``: the official code casts the map to the
  uint8 image's class, which rounds it to a binary mask. With ``normalize``
  the mask multiplies the pixel-space image (masked pixels black).
* ``yc`` = probability of c1 on the image (the top-1 probability when c1 is the
  predicted class); ``oc`` = the *highest* class probability on the masked
  image (of any class, as in the official code); ``hit`` = c1 among the masked
  image's top 5 (top min(5, C)).
* ``AD = max(0, yc − oc)/yc``; ``SSIM`` and ``FSIM`` between the masked and the
  original image; ``MSE`` = mean squared error of the [0, 1] pixels (the
  official code divides the uint8 MSE by 255²).
* on a miss: class-sensitive → AD, SSIM, FSIM and MSE are multiplied by
  ``1 − |yc − oc|``; otherwise AD = 1, SSIM = FSIM = 0, MSE = 1.
* ``AVX`` = harmonic mean of SSIM, FSIM, 1 − MSE and 1 − AD
  (``4 / Σ 1/v``; a zero term gives 0, as MATLAB's 1/0 = Inf does; a negative
  term — SSIM can be slightly negative — also gives 0 here, where the official
  formula is ill-defined).

SSIM and FSIM come from ``piq`` (``data_range=1``), not re-implemented:

* SSIM: ``piq.ssim`` (11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03,
  as MATLAB's ``ssim``), ``downsample=False`` (MATLAB does not downsample).
  Differences from MATLAB: piq averages 2-D SSIM over the colour channels and
  uses the valid part of the window, where MATLAB treats an RGB image as a 3-D
  volume and pads by replication.
* FSIM: ``piq.fsim`` with ``chromatic=True`` for 3-channel images — the
  official code keeps the second output of Zhang's ``FeatureSIM``, i.e. FSIMc;
  images with another channel count get the luminance FSIM (``chromatic=False``).

Pixel space: with ``normalize=(mean, std)`` x must be pixel-space in [0, 1] and
SSIM/FSIM/MSE use it as it is. With ``normalize=None`` the model sees the
tensor given; images already in [0, 1] are used as they are, others are mapped
to [0, 1] by one affine map per image — shared by the image and its masked
copy, so unmasked pixels stay equal — ``(t − lo)/(hi − lo)`` with ``lo, hi``
the image's extreme values extended to include 0 (the masked value).
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch
from torch import Tensor, nn

from ..engine import Engine, Precision, engine_for
from ..inputs import HALF, Normalize, normalizer
from ..targets import TargetSpec
from ._common import check_maps, clean_probabilities

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


def avx_components(model: nn.Module, x: Tensor, map_c1: Tensor, map_c2: Tensor, *,
                   targets: TargetSpec = None, normalize: Normalize = None,
                   batch_size: int = 32, nan_class_sensitive: bool = False,
                   precision: Optional[Precision] = None) -> AVXComponents:
    """Every term of AVX (see the module docstring) for each image: an
    :class:`AVXComponents` of (B,) tensors.

    Args:
        model: the classifier (logits (B, C)).
        x: images (B, C, H, W) — pixel-space in [0, 1] when ``normalize`` is given.
        map_c1: (B, H, W) maps of the explained class c1 (``Mx``), in [0, 1].
        map_c2: (B, H, W) maps of the runner-up class c2 (``Mn``).
        targets: c1; None (default, ADVISE's choice) = each image's predicted class.
        normalize: None or ``(mean, std)`` (fastcam's input convention).
        batch_size: masked images per forward.
        nan_class_sensitive: count a NaN correlation (constant map) as
            class-sensitive (the official code does not).
        precision: how the model runs (:mod:`fastcam.engine`; None: fp32, or
            the Engine's when ``model`` is an :class:`~fastcam.engine.Engine`).
    """
    map_c1 = check_maps(x, map_c1)   # checks x too
    map_c2 = check_maps(x, map_c2)
    model = engine_for(model, precision)
    yc, c1 = clean_probabilities(model, x, targets, normalize, batch_size)
    index = torch.arange(x.shape[0], device=x.device)
    return avx_of_pairs(model, x, map_c1, map_c2, index, c1, yc, normalize=normalize,
                        batch_size=batch_size, nan_class_sensitive=nan_class_sensitive)


def avx(model: nn.Module, x: Tensor, map_c1: Tensor, map_c2: Tensor, *,
        targets: TargetSpec = None, normalize: Normalize = None, batch_size: int = 32,
        nan_class_sensitive: bool = False, precision: Optional[Precision] = None) -> Tensor:
    """ADVISE's AVX per image (B,), in [0, 1], higher is better: the harmonic
    mean of SSIM, FSIM, 1 − MSE and 1 − AD of the image masked by
    ``1[map_c1 ≥ 0.5]``, penalised on a top-5 miss (module docstring).
    Arguments as :func:`avx_components`."""
    return avx_components(model, x, map_c1, map_c2, targets=targets, normalize=normalize,
                          batch_size=batch_size, nan_class_sensitive=nan_class_sensitive,
                          precision=precision).avx
