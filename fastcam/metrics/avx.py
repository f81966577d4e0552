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

The per-pair computation (:func:`avx_of_pairs`, :class:`AVXComponents`,
:func:`pearson`) lives in :mod:`fastcam.quality.avx`, below both this package and
:mod:`fastcam.methods` (ADVISE scores its candidates with it); it is re-exported
here.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..engine import Precision, engine_for
from ..inputs import Normalize
from ..quality.avx import (CLASS_SENSITIVITY_THRESHOLD, HIT_TOP_K, AVXComponents, avx_of_pairs,  # noqa: F401
                           pearson)
from ..targets import TargetSpec
from ._common import check_maps, clean_probabilities

__all__ = ["avx", "avx_components", "avx_of_pairs", "AVXComponents", "pearson", "CLASS_SENSITIVITY_THRESHOLD",
           "HIT_TOP_K"]


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
