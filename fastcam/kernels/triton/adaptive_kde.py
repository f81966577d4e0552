"""Triton kernel of adaptive_kde: Shimazaki & Shinomoto's locally adaptive KDE
("ssvkernel", Gauss window) of N channels and the peak count of each estimate,
one program per channel. The definition is :mod:`fastcam.kernels.reference.adaptive_kde`;
the interface is :mod:`fastcam.kernels.cpp`'s (``adaptive_kde(samples,
grid_size)``) and the per-channel steps mirror ``csrc/common/adaptive_kde_math.h``.

Host (torch, batched): each channel's internal grid size L
(``reference.adaptive_kde.grid_sizes``: Z unless the in-range samples are sparser than the
grid; 0 = no estimate), and, per distinct L, the tables that depend only on L —
the M bandwidths W and their periodised smoothing kernels stored two-sided,
ext[i, L-1+d] = κ_i[|d|] (``reference.adaptive_kde.kernel_table``). One launch per
distinct L (almost always one), over the channels with that L.

``_adaptive_kde_kernel`` grid (channels with this L,): program p = channel idx[p].
  1. histogram of the in-range samples on the edges t_m − dt/2 (vectorised binary
     search, numpy.histogram's semantics), y = counts/dt;
  2. c_j = ŷ_j² − 2ŷ_j y + 2/√(2π)/W_j y with ŷ_j = κ_j ⊛ y, for the M bandwidths;
  3. local smoothing C_ij = κ_i ⊛ c_j, running argmin over j -> gsr_i = W_argmin/W_i;
     every convolution is Σ_m src[m] κ[|k − m|] in (BLOCK_M × BLOCK_L) tiles;
  4. golden-section search over γ (≤ max_iter steps, a scalar "active" flag in
     place of a break), each step one cost: bandwidth selection, Nadaraya–Watson
     smoothing of the bandwidths, balloon estimate, its L2 cost; the density is
     the estimate of the last γ evaluated;
  5. linear interpolation onto linspace(0, 1, Z) when L != Z (constexpr INTERP),
     then the peak count: + -> − changes of the signs of consecutive
     differences, zero differences skipped (an associative scan carrying the
     last non-zero sign).
  Per-program scratch in global memory (y, c, gsr, w_v, the coarse estimate),
  written and re-read by the same program with tl.debug_barrier() between.

float64 throughout (the estimate's argmins and comparisons are made on float64
values, as the reference); every non-trivial constant reaches the kernel in a
float64 tensor (Triton rounds a Python float literal to float32, and the
interpreter does so with float scalar arguments too).
"""
from __future__ import annotations

import functools
import math

import torch
import triton
import triton.language as tl
from torch import Tensor

from ..reference.adaptive_kde import (M_BANDWIDTHS, MAX_ITER, TOL, bandwidths, grid_sizes,
                                     kernel_table, linspace01)
from ._common import on_device

_F64 = torch.float64


# ----------------------------------------------------------------------------
# Device helpers
# ----------------------------------------------------------------------------
@triton.jit
def _grid_point(i, n, h):
    """numpy.linspace(0, 1, n)[i] = i·h (h = 1/(n−1)), the last point exactly 1."""
    return tl.where(i == n - 1, 1.0, i.to(tl.float64) * h)


@triton.jit
def _conv(src_ptr, ext_ptr, L, kk, kmask, BLOCK_L: tl.constexpr, BLOCK_M: tl.constexpr):
    """(κ ⊛ src)[k] = Σ_m src[m] κ[|k − m|] for the grid points kk; ext_ptr points
    at the two-sided kernel (2L−1 entries, κ[0] at L−1)."""
    acc = tl.zeros([BLOCK_L], tl.float64)
    for m0 in range(0, L, BLOCK_M):
        mm = m0 + tl.arange(0, BLOCK_M)
        mmask = mm < L
        sm = tl.load(src_ptr + mm, mask=mmask, other=0.0)
        kap = tl.load(ext_ptr + (L - 1) - mm[:, None] + kk[None, :],
                      mask=mmask[:, None] & kmask[None, :], other=0.0)
        acc += tl.sum(sm[:, None] * kap, axis=0)
    return acc


@triton.jit
def _cost(g, y, N, t, kk, kmask, gsr_ptr, wv_ptr, y_ptr, W_ptr, M, L, dt, h, Wmin, Wmax, kc,
          BLOCK_L: tl.constexpr, BLOCK_M: tl.constexpr):
    """C(γ = g) and the balloon estimate scaled to mass N (reference.adaptive_kde._cost)."""
    # variable bandwidths w_v: min W / max W outside [min_i r_i, max_i r_i], else
    # g·W_i* with i* the largest i with r_i >= g
    rmax = tl.full([BLOCK_L], float("-inf"), tl.float64)
    rmin = tl.full([BLOCK_L], float("inf"), tl.float64)
    last = tl.zeros([BLOCK_L], tl.int32)
    for i in range(0, M):
        r = tl.load(gsr_ptr + i * BLOCK_L + kk, mask=kmask, other=1.0)
        rmax = tl.maximum(rmax, r)
        rmin = tl.minimum(rmin, r)
        last = tl.where(r >= g, i, last)
    wl = tl.load(W_ptr + last, mask=kmask, other=1.0)
    optwv = tl.where(g > rmax, Wmin, tl.where(g < rmin, Wmax, g * wl))
    tl.debug_barrier()                       # the previous cost's readers are done
    tl.store(wv_ptr + kk, optwv, mask=kmask)
    tl.debug_barrier()
    # Nadaraya-Watson: w_p(t_k) = Σ_m w_v(t_m) G(t_k − t_m; w_v(t_m)/g) / Σ_m G(...)
    num = tl.zeros([BLOCK_L], tl.float64)
    den = tl.zeros([BLOCK_L], tl.float64)
    for m0 in range(0, L, BLOCK_M):
        mm = m0 + tl.arange(0, BLOCK_M)
        mmask = mm < L
        wv = tl.load(wv_ptr + mm, mask=mmask, other=1.0)
        s = wv / g
        d = t[:, None] - _grid_point(mm, L, h)[None, :]
        z = tl.exp(d * d * (-0.5 / (s * s))[None, :]) / s[None, :]
        z = tl.where(mmask[None, :], z, 0.0)
        num += tl.sum(z * wv[None, :], axis=1)
        den += tl.sum(z, axis=1)
    optwp = tl.where(kmask, num / tl.where(kmask, den, 1.0), 1.0)
    # balloon estimator: ŷ(t_k) = Σ_m y_m dt G(t_k − t_m; w_p(t_k)), scaled to mass N
    ak = -0.5 / (optwp * optwp)
    yv = tl.zeros([BLOCK_L], tl.float64)
    for m0 in range(0, L, BLOCK_M):
        mm = m0 + tl.arange(0, BLOCK_M)
        mmask = mm < L
        ym = tl.load(y_ptr + mm, mask=mmask, other=0.0) * dt
        d = t[:, None] - _grid_point(mm, L, h)[None, :]
        yv += tl.sum(ym[None, :] * tl.exp(d * d * ak[:, None]), axis=1)
    yv = tl.where(kmask, yv / optwp, 0.0)
    mass = tl.sum(yv * dt, axis=0)
    yv = yv * N / mass
    cg = tl.where(kmask, (yv * yv - 2.0 * yv * y + kc / optwp * y) * dt, 0.0)
    return tl.sum(cg, axis=0), yv


@triton.jit
def _last_nonzero(a, b):
    return tl.where(b != 0, b, a)


# ----------------------------------------------------------------------------
# Kernel
# ----------------------------------------------------------------------------
@triton.jit(do_not_specialize=["S", "Z", "L", "M", "max_iter"])  # one compile per block size
def _adaptive_kde_kernel(x_ptr, idx_ptr, W_ptr, ext_ptr, dens_ptr, peaks_ptr, y_buf, c_buf, gsr_buf,
                         wv_buf, yo_buf, prm_ptr, S, Z, L, M, max_iter, INTERP: tl.constexpr,
                         BLOCK_L: tl.constexpr, BLOCK_Z: tl.constexpr, BLOCK_S: tl.constexpr,
                         BLOCK_M: tl.constexpr, NSTEP: tl.constexpr):
    """One channel: density on linspace(0,1,Z) into dens[ch], peak count into
    peaks[ch], ch = idx[program]. Grid size L (> 0) and its tables W (M), ext
    (M, 2L−1) are shared by every program of the launch. prm (float64): dt,
    1/(L−1), 1/(Z−1), min W, max W, tol, 1e-12, φ−1, 2−φ, 2/√(2π) (a tensor, as
    scalar arguments reach the interpreter as float32)."""
    dt = tl.load(prm_ptr + 0)
    h = tl.load(prm_ptr + 1)
    hz = tl.load(prm_ptr + 2)
    Wmin = tl.load(prm_ptr + 3)
    Wmax = tl.load(prm_ptr + 4)
    tol = tl.load(prm_ptr + 5)
    a0 = tl.load(prm_ptr + 6)
    gr1 = tl.load(prm_ptr + 7)
    gr2 = tl.load(prm_ptr + 8)
    kc = tl.load(prm_ptr + 9)
    p = tl.program_id(0).to(tl.int64)
    ch = tl.load(idx_ptr + p).to(tl.int64)
    E = 2 * L - 1
    kk = tl.arange(0, BLOCK_L)
    kmask = kk < L
    t = _grid_point(kk, L, h)
    y_row = y_buf + p * BLOCK_L
    c_row = c_buf + p * M * BLOCK_L
    gsr_row = gsr_buf + p * M * BLOCK_L
    wv_row = wv_buf + p * BLOCK_L
    yo_row = yo_buf + p * BLOCK_L

    # 1. histogram: bin of v = #{m in 1..L−1 : t_m − dt/2 <= v} (binary search)
    counts = tl.zeros([BLOCK_L], tl.float64)
    for s0 in range(0, S, BLOCK_S):
        ss = s0 + tl.arange(0, BLOCK_S)
        v = tl.load(x_ptr + ch * S + ss, mask=ss < S, other=-1.0)
        inr = (ss < S) & (v >= 0.0) & (v <= 1.0)
        lo = tl.zeros([BLOCK_S], tl.int32)
        hi = tl.zeros([BLOCK_S], tl.int32) + (L - 1)
        for _ in range(NSTEP):
            mid = (lo + hi + 1) // 2
            go = _grid_point(mid, L, h) - 0.5 * dt <= v
            lo = tl.where((lo < hi) & go, mid, lo)
            hi = tl.where((lo < hi) & (~go), mid - 1, hi)
        hit = (lo[None, :] == kk[:, None]) & inr[None, :]
        counts += tl.sum(tl.where(hit, 1.0, 0.0), axis=1)
    y = counts / dt
    N = tl.sum(y * dt, axis=0)
    tl.store(y_row + kk, y, mask=kmask)
    tl.debug_barrier()

    # 2. local risk integrands c_j = ŷ_j² − 2 ŷ_j y + 2/√(2π)/W_j y
    for j in range(0, M):
        yh = _conv(y_row, ext_ptr + j * E, L, kk, kmask, BLOCK_L, BLOCK_M)
        wj = tl.load(W_ptr + j)
        c = yh * yh - 2.0 * yh * y + kc / wj * y
        tl.store(c_row + j * BLOCK_L + kk, c, mask=kmask)
    tl.debug_barrier()

    # 3. local smoothing and the locally optimal bandwidths (first argmin)
    for i in range(0, M):
        best = tl.full([BLOCK_L], float("inf"), tl.float64)
        arg = tl.zeros([BLOCK_L], tl.int32)
        for j in range(0, M):
            acc = _conv(c_row + j * BLOCK_L, ext_ptr + i * E, L, kk, kmask, BLOCK_L, BLOCK_M)
            better = acc < best
            best = tl.where(better, acc, best)
            arg = tl.where(better, j, arg)
        wb = tl.load(W_ptr + arg, mask=kmask, other=1.0)
        wi = tl.load(W_ptr + i)
        tl.store(gsr_row + i * BLOCK_L + kk, wb / wi, mask=kmask)
    tl.debug_barrier()

    # 4. golden-section search over the stiffness γ in [a0, 1]
    a = a0
    b = a0 * 0.0 + 1.0
    c1 = gr1 * a + gr2 * b
    c2 = gr2 * a + gr1 * b
    f1, yv = _cost(c1, y, N, t, kk, kmask, gsr_row, wv_row, y_row, W_ptr, M, L, dt, h, Wmin,
                   Wmax, kc, BLOCK_L, BLOCK_M)
    f2, yv = _cost(c2, y, N, t, kk, kmask, gsr_row, wv_row, y_row, W_ptr, M, L, dt, h, Wmin,
                   Wmax, kc, BLOCK_L, BLOCK_M)
    yopt = tl.zeros([BLOCK_L], tl.float64)
    active = tl.abs(b - a) > tol * (tl.abs(c1) + tl.abs(c2))
    for _ in range(0, max_iter):
        active = active & (tl.abs(b - a) > tol * (tl.abs(c1) + tl.abs(c2)))
        if active:
            left = f1 < f2
            nb = tl.where(left, c2, b)
            na = tl.where(left, a, c1)
            nc1 = tl.where(left, gr1 * a + gr2 * nb, c2)
            nc2 = tl.where(left, c1, gr2 * na + gr1 * b)
            g = tl.where(left, nc1, nc2)
            f, yv = _cost(g, y, N, t, kk, kmask, gsr_row, wv_row, y_row, W_ptr, M, L, dt, h,
                          Wmin, Wmax, kc, BLOCK_L, BLOCK_M)
            nf1 = tl.where(left, f, f2)
            nf2 = tl.where(left, f1, f)
            a, b, c1, c2, f1, f2 = na, nb, nc1, nc2, nf1, nf2
            yopt = yv / tl.sum(yv * dt, axis=0)

    # 5. density on linspace(0, 1, Z) and its peaks
    zz = tl.arange(0, BLOCK_Z)
    zmask = zz < Z
    out_row = dens_ptr + ch * Z
    if INTERP:
        tl.store(yo_row + kk, yopt, mask=kmask)
        tl.debug_barrier()
        xq = _grid_point(zz, Z, hz)
        j = tl.minimum(tl.maximum((xq * (L - 1)).to(tl.int32), 0), L - 2)
        j = tl.where(_grid_point(j, L, h) > xq, j - 1, j)
        j = tl.where((j + 1 <= L - 2) & (_grid_point(j + 1, L, h) <= xq), j + 1, j)
        j = tl.minimum(tl.maximum(j, 0), L - 2)
        x0 = _grid_point(j, L, h)
        x1 = _grid_point(j + 1, L, h)
        f0 = tl.load(yo_row + j, mask=zmask, other=0.0)
        fa = tl.load(yo_row + j + 1, mask=zmask, other=0.0)
        fl = tl.load(yo_row + (L - 1))
        dens = tl.where(xq >= 1.0, fl, (fa - f0) / (x1 - x0) * (xq - x0) + f0)
        tl.store(out_row + zz, dens, mask=zmask)
    else:
        tl.store(out_row + zz, yopt, mask=zmask)
    tl.debug_barrier()
    cur = tl.load(out_row + zz, mask=zmask, other=0.0)
    prev = tl.load(out_row + zz - 1, mask=zmask & (zz >= 1), other=0.0)
    prev2 = tl.load(out_row + zz - 2, mask=zmask & (zz >= 2), other=0.0)
    d = cur - prev                                   # difference i (valid for i >= 1)
    dp = prev - prev2                                # difference i − 1 (valid for i >= 2)
    s = tl.where(zmask & (zz >= 1), (d > 0).to(tl.int32) - (d < 0).to(tl.int32), 0)
    sp = tl.where(zmask & (zz >= 2), (dp > 0).to(tl.int32) - (dp < 0).to(tl.int32), 0)
    before = tl.associative_scan(sp, 0, _last_nonzero)   # last non-zero sign before i
    peaks = tl.sum(((s < 0) & (before > 0)).to(tl.int32), axis=0)
    tl.store(peaks_ptr + ch, peaks.to(tl.int64))


#: The largest tile of a convolution step, BLOCK_M x BLOCK_L float64 values, per
#: thread: 8 (the cap that keeps the kernel out of register spills).
TILE_PER_THREAD = 8


def adaptive_kde_config(BLOCK_L: int) -> tuple[int, int]:
    """(BLOCK_M, num_warps) for a grid block of BLOCK_L points: 4 to 16 warps (one
    per 32 grid points) and the largest power-of-two BLOCK_M <= 16 whose
    BLOCK_M x BLOCK_L tiles hold at most TILE_PER_THREAD values per thread.

    One configuration per block size, no autotuning: the kernel's compile time
    grows steeply with BLOCK_L (14 to 35 s per configuration at BLOCK_L = 256 for
    sm_90, measured on one shared CPU core), and an autotuner keyed on the
    data-dependent grid size L compiled and benchmarked every configuration again
    for each new L (one of them spilled registers)."""
    num_warps = max(4, min(16, BLOCK_L // 32))
    bm = 16
    while bm > 1 and bm * BLOCK_L > TILE_PER_THREAD * 32 * num_warps:
        bm //= 2
    return bm, num_warps


#: The raw @triton.jit kernels, for ahead-of-time compilation checks.
KERNELS = (_adaptive_kde_kernel,)


# ----------------------------------------------------------------------------
# Host interface (as fastcam.kernels.cpp's)
# ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _tables_cpu(L: int, M: int) -> tuple[float, tuple[float, ...], Tensor]:
    """dt, the M bandwidths and the two-sided kernels ext (M, 2L−1) for a grid of L."""
    t = linspace01(L)
    dt = float((t[1:] - t[:-1]).min())
    W = bandwidths(dt, M)
    ext = torch.empty(M, 2 * L - 1, dtype=_F64)
    for i, w in enumerate(W):
        k = kernel_table(L, w / dt)
        ext[i] = torch.cat([k.flip(0), k[1:]])
    return dt, tuple(W), ext


def adaptive_kde(samples: Tensor, grid_size: int | None = None) -> tuple[Tensor, Tensor]:
    """See reference.adaptive_kde: samples (N, S) -> density (N, Z) float64 on
    linspace(0, 1, Z) (Z = grid_size, default S) and peaks (N,) int64."""
    x = samples.to(_F64).contiguous()
    N, S = x.shape
    Z = S if grid_size is None else int(grid_size)
    dev = x.device
    density = torch.zeros(N, Z, dtype=_F64, device=dev)
    peaks = torch.zeros(N, dtype=torch.long, device=dev)
    if N == 0 or S == 0:
        return density, peaks
    M = M_BANDWIDTHS
    grid = grid_sizes(x, Z)
    phi = (5 ** 0.5 + 1) / 2
    kc = 2 / (2 * math.pi) ** 0.5
    BLOCK_Z = triton.next_power_of_2(Z)
    BLOCK_S = min(triton.next_power_of_2(S), 64)
    for L in torch.unique(grid[grid > 0]).tolist():
        idx = (grid == L).nonzero().squeeze(1).contiguous()
        n = idx.numel()
        dt, W, ext = _tables_cpu(L, M)
        W_t = torch.tensor(W, dtype=_F64, device=dev)
        ext = ext.to(dev)
        prm = torch.tensor([dt, 1.0 / (L - 1), 1.0 / (Z - 1), min(W), max(W), TOL, 1e-12,
                            phi - 1, 2 - phi, kc], dtype=_F64, device=dev)
        BLOCK_L = triton.next_power_of_2(L)
        y_buf = torch.empty(n, BLOCK_L, dtype=_F64, device=dev)
        c_buf = torch.empty(n, M, BLOCK_L, dtype=_F64, device=dev)
        gsr_buf = torch.empty(n, M, BLOCK_L, dtype=_F64, device=dev)
        wv_buf = torch.empty(n, BLOCK_L, dtype=_F64, device=dev)
        yo_buf = torch.empty(n, BLOCK_L, dtype=_F64, device=dev)
        block_m, num_warps = adaptive_kde_config(BLOCK_L)
        with on_device(dev):
            _adaptive_kde_kernel[(n,)](x, idx, W_t, ext, density, peaks, y_buf, c_buf, gsr_buf,
                                       wv_buf, yo_buf, prm, S, Z, L, M, MAX_ITER, INTERP=L != Z,
                                       BLOCK_L=BLOCK_L, BLOCK_Z=BLOCK_Z, BLOCK_S=BLOCK_S,
                                       BLOCK_M=block_m, NSTEP=max(1, (BLOCK_L - 1).bit_length()),
                                       num_warps=num_warps)
    return density, peaks
