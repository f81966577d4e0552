r"""Eager-PyTorch definition of the ``adaptive_kde`` op: Shimazaki & Shinomoto's
locally adaptive kernel density estimate ("ssvkernel", J. Comput. Neurosci. 29,
2010) of many small samples at once, and the number of peaks of each estimate.
The oracle every compiled backend is tested against. float64 throughout,
batched over channels (no Python loop over channels: the loops are over the M
bandwidths, the ≤ 30 golden-section iterations, and the distinct internal grid
sizes, which are all Z except for sparse channels, see step 1).

One channel: samples x_1..x_S; evaluation grid tin = linspace(0, 1, Z)
(numpy's linspace: tin_i = i·(1/(Z−1)), tin_{Z−1} = 1). Only samples in [0, 1]
are used; the span is T = 1 (the range of tin) and Δ_s is the smallest non-zero
gap between sorted in-range samples (ssvkernel's definition with the span and
gap taken over the grid range; the adaptivekde port takes both from all
samples, which is the same when the in-range samples include 0 and 1 and none
lie outside).

1. Grid. If Δ_s > min diff(tin), the estimate is computed on the coarser grid
   t = linspace(0, 1, L), L = min(⌈T/Δ_s⌉, 1000), and linearly interpolated onto
   tin at the end (np.interp); otherwise t = tin, L = Z. dt = min diff(t).
2. Histogram. y_m = #{in-range x in [t_m − dt/2, t_m + dt/2)}/dt (np.histogram
   on the edges t_m − dt/2, m = 0..L, last bin closed); N = Σ_m y_m dt.
3. Candidate bandwidths W_j = logexp(linspace(ilogexp(5·dt), ilogexp(T), M)),
   j = 0..M−1, with logexp(u) = log(1 + e^u) and ilogexp(u) = log(e^u − 1).
4. Local risks. ŷ_j = κ_{W_j} ⊛ y (Gauss kernel of bandwidth W_j) and
   c_j(t) = ŷ_j² − 2 ŷ_j y + 2/√(2π)/W_j · y, the integrand of the L2 risk of the
   fixed-bandwidth estimate (its integral is the Shimazaki–Shinomoto cost
   ∫ŷ² − 2Σ_i ŷ_{−i}(x_i)). Local smoothing: for every window i,
   C_ij = κ_{W_i} ⊛ c_j and the locally optimal bandwidth w*_i(t) = W_{argmin_j C_ij(t)}
   (first index on ties).
5. Stiffness γ (golden-section search over [1e−12, 1], at most 30 iterations,
   stopping when |b − a| ≤ 1e−5·(|c1| + |c2|)). For a γ, at every grid point
   with r_i = w*_i(t)/W_i: w_v(t) = min W if γ > max_i r_i, max W if γ < min_i r_i,
   else γ·W_{i*} with i* the largest i with r_i ≥ γ; the bandwidths are smoothed
   by Nadaraya–Watson regression with a Gauss window of width w_v/γ at each
   source point, w_p(t_k) = Σ_m w_v(t_m) G(t_k − t_m; w_v(t_m)/γ) / Σ_m G(·);
   the balloon estimate is ŷ_γ(t_k) = Σ_m y_m dt G(t_k − t_m; w_p(t_k)), scaled
   to Σ ŷ_γ dt = N, and its cost is C(γ) = Σ_k (ŷ_γ² − 2 ŷ_γ y + 2/√(2π)/w_p · y) dt,
   G(x; s) = e^{−x²/(2s²)}/s (constant factors cancel in both ratios).
   The density is ŷ_γ/Σ ŷ_γ dt of the *last* γ evaluated (as ssvkernel).

κ_w ⊛ y is ssvkernel's FFT smoothing (``fftkernel``/``fftkernelWin``): y
zero-padded to n = 2^⌈log2(L + 3w/dt)⌉ points and multiplied in the frequency
domain by exp(−(2π f w/dt)²/2). That is a *circular* convolution of the
padded signal, i.e. (κ ⊛ y)_k = Σ_m y_m κ[|k − m|] with the periodised kernel
κ[r] = IDFT_n(exp(−(2π f σ)²/2))[r] ≈ Σ_p g_σ(r + p·n), σ = w/dt bins and g_σ the
normal density: the wrap-around images (≥ 3σ away) are part of the definition
and are kept. :func:`kernel_table` computes κ by the exact finite cosine sum for
n ≤ 64 and by the image sum otherwise (there σ ≥ 5, so the two agree to
rounding), by direct summation instead of FFTs.

Peaks: the number of local maxima of the density on tin, interior only, a flat
top counted once (MATLAB's findpeaks / scipy.signal.find_peaks): the number of
times the sign of consecutive differences, skipping zero differences, goes
from + to −.

Failures: a channel with no sample in [0, 1], with all in-range samples equal
(no non-zero gap, including a single sample), or whose coarse grid would have
a single point (in-range samples exactly {0, 1}) has no estimate: density 0
everywhere, 0 peaks.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

#: Number of candidate bandwidths, golden-section iteration cap and tolerance.
M_BANDWIDTHS = 10
MAX_ITER = 30
TOL = 1e-5
#: ssvkernel's cap on the size of the coarse grid.
MAX_GRID = 1000
_PHI = (5 ** 0.5 + 1) / 2
_F64 = torch.float64


def linspace01(n: int, device=None) -> Tensor:
    """numpy.linspace(0, 1, n) bit for bit: i·(1/(n−1)), the last point exactly 1."""
    t = torch.arange(n, dtype=_F64, device=device)
    if n > 1:
        t = t * (1.0 / (n - 1))
        t[-1] = 1.0
    return t


def _np_linspace(a: float, b: float, n: int) -> list[float]:
    """numpy.linspace(a, b, n) for Python floats, as numpy computes it."""
    if n == 1:
        return [a]
    step = (b - a) / (n - 1)
    out = [i * step + a for i in range(n)]
    out[-1] = b
    return out


def _logexp(u: float) -> float:
    return math.log(1 + math.exp(u)) if u < 1e2 else u


def _ilogexp(u: float) -> float:
    return math.log(math.exp(u) - 1) if u < 1e2 else u


def bandwidths(dt: float, M: int = M_BANDWIDTHS, T: float = 1.0) -> list[float]:
    """The M candidate bandwidths W_j = logexp(linspace(ilogexp(5·dt), ilogexp(T), M))."""
    return [_logexp(u) for u in _np_linspace(_ilogexp(5 * dt), _ilogexp(T), M)]


def fft_size(L: int, w_bins: float) -> int:
    """ssvkernel's padded FFT length 2^⌈log2(L + 3w)⌉ (w in bins)."""
    return int(2 ** math.ceil(math.log2(L + 3 * w_bins)))


def kernel_table(L: int, w_bins: float) -> Tensor:
    """κ[r], r = 0..L−1: the periodised Gauss kernel of ssvkernel's FFT smoothing
    with bandwidth ``w_bins`` (in grid steps), float64 (L,). See the module doc."""
    n = fft_size(L, w_bins)
    r = torch.arange(L, dtype=_F64)
    if n <= 64:  # exact: the inverse DFT of exp(−(2π f w)²/2) sampled at f = k/n
        k = torch.arange(n // 2 + 1, dtype=_F64)
        K = torch.exp(-0.5 * (w_bins * 2 * math.pi * (k / n)) ** 2)
        wt = torch.full_like(K, 2.0)
        wt[0] = 1.0
        wt[-1] = 1.0
        return (wt * K * torch.cos(2 * math.pi * k[None, :] * r[:, None] / n)).sum(1) / n
    P = int(40 * w_bins / n) + 1
    p = torch.arange(-P, P + 1, dtype=_F64)
    x = r[:, None] + p[None, :] * n
    g = torch.exp(-0.5 * (x / w_bins) ** 2) / (math.sqrt(2 * math.pi) * w_bins)
    return g.sum(1)


def toeplitz(kappa: Tensor) -> Tensor:
    """(L, L) matrix K[m, k] = κ[|k − m|]: (κ ⊛ y)_k = Σ_m y_m K[m, k]."""
    L = kappa.shape[-1]
    i = torch.arange(L)
    return kappa[(i[None, :] - i[:, None]).abs()]


def count_peaks(y: Tensor) -> Tensor:
    """Number of interior local maxima along the last dim, flat tops counted once
    (findpeaks): sign changes + → − of the differences, zero differences skipped."""
    s = torch.sign(y[..., 1:] - y[..., :-1])
    if s.shape[-1] < 2:
        return torch.zeros(y.shape[:-1], dtype=torch.long, device=y.device)
    pos = torch.arange(s.shape[-1], device=y.device).expand_as(s)
    last = torch.where(s != 0, pos, torch.full_like(pos, -1)).cummax(-1).values  # last non-zero ≤ m
    prev = torch.cat([torch.full_like(last[..., :1], -1), last[..., :-1]], -1)    # last non-zero < m
    prev_sign = torch.where(prev >= 0, s.gather(-1, prev.clamp(min=0)), torch.zeros_like(s))
    return ((s < 0) & (prev_sign > 0)).sum(-1)


def _gauss_matrix(d2: Tensor, s: Tensor, dim: int) -> Tensor:
    """G(t_k − t_m; s) = exp(−(t_k − t_m)²/(2s²))/s for d2 = (t_k − t_m)² (L, L) and
    bandwidths s (n, L) indexed by m (dim=−1: source points) or by k (dim=−2)."""
    s = s.unsqueeze(dim)
    return torch.exp(d2 * (-0.5 / s ** 2)).div_(s)


def _cost(g: Tensor, y_hist: Tensor, N: Tensor, d2: Tensor, dt: float, gsr: Tensor,
          W: Tensor) -> tuple[Tensor, Tensor]:
    """C(γ) and the un-normalised balloon estimate (scaled to mass N) for each
    channel's γ = g (n,). y_hist (n,L), N (n,), d2 (L,L) squared grid distances,
    gsr (n,M,L) = w*_i(t)/W_i."""
    gg = g[:, None]
    over = gg > gsr.amax(1)
    under = gg < gsr.amin(1)
    M = W.shape[0]
    iota = torch.arange(M, device=g.device)[None, :, None]
    last = torch.where(gsr >= g[:, None, None], iota, torch.full_like(iota, -1)).amax(1)
    optwv = torch.where(over, W.min(), torch.where(under, W.max(), gg * W[last.clamp(min=0)]))
    # Nadaraya-Watson: w_p(t_k) = Σ_m w_v(t_m) G(t_k − t_m; w_v(t_m)/γ) / Σ_m G(...)
    z = _gauss_matrix(d2, optwv / gg, -2)                           # (n, L_k, L_m)
    num_den = torch.bmm(z, torch.stack([optwv, torch.ones_like(optwv)], -1))
    optwp = num_den[..., 0] / num_den[..., 1]
    # balloon estimator: ŷ(t_k) = Σ_m y_m dt G(t_k − t_m; w_p(t_k)), scaled to mass N
    z = _gauss_matrix(d2, optwp, -1)                                # (n, L_k, L_m)
    yv = torch.bmm(z, (y_hist * dt)[..., None])[..., 0]
    yv = yv * N[:, None] / (yv * dt).sum(-1, keepdim=True)
    cg = yv ** 2 - 2 * yv * y_hist + 2 / (2 * math.pi) ** 0.5 / optwp * y_hist
    return (cg * dt).sum(-1), yv


def _estimate(x: Tensor, inr: Tensor, L: int, M: int, max_iter: int,
              tol: float) -> Tensor:
    """Densities (n, L) on linspace(0, 1, L) of channels x (n, S) whose in-range
    samples are ``inr``; all of them use the grid of L points."""
    dev = x.device
    t = linspace01(L, dev)
    dt = float((t[1:] - t[:-1]).min())
    # 2. histogram (numpy's searchsorted semantics on the edges t − dt/2)
    edges = torch.cat([t, t[-1:] + dt]) - dt / 2
    bins = torch.searchsorted(edges[1:L].contiguous(), x.contiguous(), right=True)
    counts = torch.zeros(x.shape[0], L, dtype=_F64, device=dev)
    counts.scatter_add_(1, torch.where(inr, bins, 0), inr.to(_F64))
    y_hist = counts / dt
    N = (y_hist * dt).sum(1)
    # 3. candidate bandwidths and their periodised smoothing kernels
    Wl = bandwidths(dt, M)
    W = torch.tensor(Wl, dtype=_F64, device=dev)
    K = torch.stack([toeplitz(kernel_table(L, w / dt)) for w in Wl]).to(dev)  # (M, L, L)
    # 4. local risks c_j and their local smoothing; locally optimal bandwidths
    yh = torch.einsum("nm,jmk->njk", y_hist, K)
    c = yh ** 2 - 2 * yh * y_hist[:, None] + (2 / (2 * math.pi) ** 0.5 / W)[:, None] * y_hist[:, None]
    optws = torch.empty(x.shape[0], M, L, dtype=_F64, device=dev)
    for i in range(M):
        C_local = c @ K[i]                                         # (n, M_j, L)
        optws[:, i] = W[C_local.argmin(1)]
    gsr = optws / W[:, None]
    d2 = (t[:, None] - t[None, :]) ** 2
    # 5. golden-section search over γ, one state per channel
    n = x.shape[0]
    a = torch.full((n,), 1e-12, dtype=_F64, device=dev)
    b = torch.ones(n, dtype=_F64, device=dev)
    c1 = (_PHI - 1) * a + (2 - _PHI) * b
    c2 = (2 - _PHI) * a + (_PHI - 1) * b
    f1, _ = _cost(c1, y_hist, N, d2, dt, gsr, W)
    f2, _ = _cost(c2, y_hist, N, d2, dt, gsr, W)
    yopt = torch.zeros(n, L, dtype=_F64, device=dev)
    active = torch.ones(n, dtype=torch.bool, device=dev)
    for _ in range(max_iter):
        active &= (b - a).abs() > tol * (c1.abs() + c2.abs())
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        A, B, C1, C2, F1, F2 = a[idx], b[idx], c1[idx], c2[idx], f1[idx], f2[idx]
        left = F1 < F2                       # minimum in [a, c2]: shrink from the right
        nb = torch.where(left, C2, B)
        na = torch.where(left, A, C1)
        nc1 = torch.where(left, (_PHI - 1) * A + (2 - _PHI) * nb, C2)
        nc2 = torch.where(left, C1, (2 - _PHI) * na + (_PHI - 1) * B)
        g = torch.where(left, nc1, nc2)
        f, yv = _cost(g, y_hist[idx], N[idx], d2, dt, gsr[idx], W)
        a[idx], b[idx], c1[idx], c2[idx] = na, nb, nc1, nc2
        f1[idx] = torch.where(left, f, F2)
        f2[idx] = torch.where(left, F1, f)
        yopt[idx] = yv / (yv * dt).sum(-1, keepdim=True)
    return yopt


def interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """numpy.interp(x, xp, fp) along the last dim of fp (n, L); x, xp increasing 1-D."""
    L = xp.shape[0]
    j = (torch.searchsorted(xp, x, right=True) - 1).clamp(0, L - 2)
    x0, x1 = xp[j], xp[j + 1]
    f0, f1 = fp[:, j], fp[:, j + 1]
    out = (f1 - f0) / (x1 - x0) * (x - x0) + f0
    return torch.where(x >= xp[-1], fp[:, -1:], out)


def grid_sizes(samples: Tensor, Z: int) -> Tensor:
    """Each channel's internal grid size L (step 1), 0 where the estimate fails."""
    x = samples
    inr = (x >= 0) & (x <= 1)
    n_in = inr.sum(1)
    xs = torch.where(inr, x, torch.full_like(x, math.inf)).sort(1).values
    gap = xs[:, 1:] - xs[:, :-1]
    pos = torch.arange(gap.shape[1], device=x.device)
    valid = (pos[None, :] < (n_in - 1)[:, None]) & (gap > 0)
    dts = torch.where(valid, gap, torch.full_like(gap, math.inf)).amin(1) if gap.shape[1] else \
        torch.full((x.shape[0],), math.inf, dtype=_F64, device=x.device)
    tin = linspace01(Z, x.device)
    min_step = float((tin[1:] - tin[:-1]).min())
    coarse = torch.clamp(torch.ceil(1.0 / dts), max=MAX_GRID).to(torch.long)
    L = torch.where(dts > min_step, coarse, torch.full_like(coarse, Z))
    ok = (n_in > 0) & torch.isfinite(dts) & (L >= 2)
    return torch.where(ok, L, torch.zeros_like(L))


def adaptive_kde(samples: Tensor, grid_size: int | None = None, M: int = M_BANDWIDTHS,
                 max_iter: int = MAX_ITER, tol: float = TOL) -> tuple[Tensor, Tensor]:
    """Locally adaptive KDE (ssvkernel, Gauss window) of every row of ``samples``.

    Args:
        samples: (N, S) values; per row, those in [0, 1] are the sample.
        grid_size: Z, the number of points of the evaluation grid linspace(0, 1, Z)
            (default S).
    Returns:
        density (N, Z) float64 (integrating to 1 by the Riemann sum on the internal
        grid; zeros for a failed channel) and peaks (N,) int64.
    """
    if samples.dim() != 2:
        raise ValueError(f"samples must be (N, S), got {tuple(samples.shape)}")
    x = samples.to(_F64)
    Nch, S = x.shape
    Z = S if grid_size is None else int(grid_size)
    if Z < 2:
        raise ValueError(f"the evaluation grid needs at least 2 points, got {Z}")
    density = torch.zeros(Nch, Z, dtype=_F64, device=x.device)
    if Nch == 0 or S == 0:
        return density, torch.zeros(Nch, dtype=torch.long, device=x.device)
    L = grid_sizes(x, Z)
    inr = (x >= 0) & (x <= 1)
    tin = linspace01(Z, x.device)
    for Lg in torch.unique(L[L > 0]).tolist():   # almost always one group, L = Z
        sel = (L == Lg).nonzero().squeeze(1)
        y = _estimate(x[sel], inr[sel], Lg, M, max_iter, tol)
        density[sel] = y if Lg == Z else interp(tin, linspace01(Lg, x.device), y)
    return density, count_peaks(density)
