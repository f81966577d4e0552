"""Batched locally adaptive kernel density estimates (Shimazaki & Shinomoto's
"ssvkernel") and their peak counts: ADVISE's channel relevance. Inference only:
no gradient (the estimate is piecewise in its inputs: histogram bins, argmins,
golden-section decisions)."""
from __future__ import annotations

import torch
from torch import Tensor

from ..kernels import reference as _reference
from ._dispatch import kernel_for


@torch.library.custom_op("fastcam::adaptive_kde", mutates_args=())
def _adaptive_kde(samples: Tensor, grid_size: int) -> tuple[Tensor, Tensor]:
    fn = kernel_for("adaptive_kde", samples.device)
    if fn is None:
        return _reference.adaptive_kde(samples, grid_size)
    return fn(samples, grid_size)


@_adaptive_kde.register_fake
def _(samples, grid_size):
    n = samples.shape[0]
    return (samples.new_empty(n, grid_size, dtype=torch.float64),
            samples.new_empty(n, dtype=torch.long))


def adaptive_kde(samples: Tensor, *, grid_size: int | None = None,
                 minmax: bool = False) -> tuple[Tensor, Tensor]:
    """Locally adaptive KDE of every channel's values and its number of peaks.

    For each row of ``samples`` the values in [0, 1] (others are dropped) are the
    sample; the density is Shimazaki & Shinomoto's locally adaptive kernel
    estimate ("ssvkernel", J. Comput. Neurosci. 29, 2010: M = 10 candidate
    bandwidths, Gauss window, at most 30 golden-section steps over the stiffness
    γ, tolerance 1e-5) evaluated on ``linspace(0, 1, Z)``, with the original
    ssvkernel's definitions of the span (T = 1, the grid's range) and of the
    smallest sample gap (over the in-range samples). It agrees, to rounding, with
    the PyPI package ``adaptivekde``'s ``ssvkernel(x, tin=linspace(0, 1, Z), M=10,
    WinFunc='Gauss')[0]`` whenever the samples lie in [0, 1] and include 0 and 1.
    The equations are in :mod:`fastcam.kernels.reference.adaptive_kde`.

    Peaks: the number of interior local maxima of the density on the grid, a flat
    top counted once (MATLAB's findpeaks). A channel without an estimate (no
    value in [0, 1], all in-range values equal, or in-range values exactly
    {0, 1}) has density 0 and 0 peaks.

    Args:
        samples: (..., S) values, e.g. activations (B, K, h·w); every leading index
            is an independent channel, all estimated in one batched call.
        grid_size: Z, the number of grid points (default S).
        minmax: min-max normalise each channel to [0, 1] first (a constant channel
            becomes all zeros, so it has no estimate).
    Returns:
        density (..., Z) float64 and peaks (...) int64.
    """
    if samples.dim() < 1:
        raise ValueError("samples must have at least one dimension (..., S)")
    if samples.is_complex():
        raise TypeError(f"samples must be real, got {samples.dtype}")
    lead = samples.shape[:-1]
    S = samples.shape[-1]
    Z = S if grid_size is None else int(grid_size)
    if Z < 2:
        raise ValueError(f"the evaluation grid needs at least 2 points, got grid_size={Z}")
    x = samples.detach().reshape(-1, S).to(torch.float64)
    if minmax and x.numel():
        lo = x.amin(1, keepdim=True)
        rng = x.amax(1, keepdim=True) - lo
        pos = rng > 0
        x = torch.where(pos, (x - lo) / torch.where(pos, rng, torch.ones_like(rng)),
                        torch.zeros_like(x))
    density, peaks = _adaptive_kde(x.contiguous(), Z)
    return density.reshape(*lead, Z), peaks.reshape(lead)
