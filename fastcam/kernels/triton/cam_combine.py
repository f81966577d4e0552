"""Triton kernels of cam_combine: ``minmax(up(ReLU(Σ_k w_k A_k)))`` per map, forward
and exact backward. The definition is :mod:`fastcam.kernels.reference.cam_combine`
(``cam_combine_forward`` / ``cam_combine_backward``); the interface mirrors
:mod:`fastcam.kernels.cpp` and the per-element maths mirrors
``csrc/common/bilinear.h`` and ``cam_combine_math.h`` (bilinear taps as ATen's
upsample_bilinear2d, min-max scaling by IEEE division, min/max subgradients
spread evenly over ties).

Kernels (one "map" is one (b, g) pair, m = b*G + g):

forward
  ``_weighted_sum_kernel``      grid (B*G*cdiv(h*w, BLOCK_P),): s_low[m, p] =
                                Σ_k w[m, k] A[b, k, p], K in BLOCK_K tiles.
  ``_upsample_minmax_kernel``   grid (B*G,): one program per map. Loop 1 over the
                                H*W output pixels in BLOCK chunks: gather the four
                                bilinear taps of ReLU(s_low), store u, keep a
                                running min/max; store stats = (min, max-min).
                                Loop 2 (normalize): rescale u in place.
backward
  ``_minmax_shares_kernel``     grid (B*G,): Σ g (y-1), -Σ g y and the tie counts
                                #(y == 0), #(y == 1) -> the per-element shares of
                                dL/dmin and dL/dmax (only when normalize).
  ``_upsample_adjoint_cols_kernel``  grid (B*G*cdiv(H*w, BLOCK),): adjoint of the
                                horizontal interpolation, t[m, i, x] = Σ_j wx(j, x)
                                gu[m, i, j] with gu the gradient w.r.t. u. Each
                                program owns output (row, low-res column) cells and
                                gathers from the window of output columns whose
                                taps touch column x: no atomics.
  ``_upsample_adjoint_rows_kernel``  grid (B*G*cdiv(h*w, BLOCK),): adjoint of the
                                vertical interpolation, g_s[m, y, x] = Σ_i wy(i, y)
                                t[m, i, x], gathered the same way, then the ReLU
                                mask (s_low > 0).
  The two contractions grad_w[b,g,k] = Σ_p g_s[b,g,p] A[b,k,p] and
  grad_A[b,k,p] = Σ_g w[b,g,k] g_s[b,g,p] are torch.bmm calls (cuBLAS on GPU).

Every grid is 1-D (program = map × tile), as the mask kernels': CUDA caps grid
axes 1 and 2 at 65,535 programs, which a 2-D grid with pixel tiles on axis 1
exceeded above about 4.2 M pixels per map.

Computation is in float64 for float64 inputs, else float32 (float16/bfloat16
inputs are loaded and stored in their dtype, computed in float32). Every float32
division is IEEE-rounded (``div_rn``: Triton's ``/`` is ``div.full.f32``,
approximate to 2 ulp, on NVIDIA GPUs), in the backward kernels too.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._common import configs, div_rn, on_device, taps, upsampled


# ----------------------------------------------------------------------------
# Device helpers
# ----------------------------------------------------------------------------
@triton.jit
def _window_start(x, in_size, out_size, ALIGN: tl.constexpr):
    """A lower bound on the first output index whose taps touch input index x.
    Taps are monotone in the output index and touch x only when i0 ∈ {x-1, x},
    i.e. src ∈ [x-1, x+1); inverting src(dst) gives dst >= (x - 0.5)*out/in - 0.5
    (align_corners=False) or dst >= (x - 1)*(out-1)/(in-1) (True). One index of
    margin absorbs rounding; the host's window length covers the upper end."""
    xf = tl.cast(x, tl.float32)
    n_in = tl.cast(in_size, tl.int32)    # tensors also when the JIT made a size equal
    n_out = tl.cast(out_size, tl.int32)  # to 1 a constexpr
    if ALIGN:
        inv = div_rn(tl.cast(n_out - 1, tl.float32), tl.cast(tl.maximum(n_in - 1, 1), tl.float32),
                     False)
        est = (xf - 1.0) * inv
    else:
        inv = div_rn(tl.cast(n_out, tl.float32), tl.cast(n_in, tl.float32), False)
        est = (xf - 0.5) * inv - 0.5
    return tl.maximum(est.to(tl.int32) - 1, 0)


def _window(n_in: int, n_out: int, align_corners: bool) -> int:
    """How many consecutive output indices, from _window_start, can touch one
    input index: src spans [x-1, x+1), i.e. 2*out/in output indices (align
    False) or 2*(out-1)/(in-1) (True), plus the start's margin and rounding."""
    if align_corners:
        if n_in == 1 or n_out == 1:
            return n_out
        span = 2.0 * (n_out - 1) / (n_in - 1)
    else:
        span = 2.0 * n_out / n_in
    return max(1, min(n_out, math.ceil(span) + 4))


# ----------------------------------------------------------------------------
# Forward
# ----------------------------------------------------------------------------
@triton.jit
def _weighted_sum_kernel(A_ptr, w_ptr, s_ptr, G, K, HW,
                         F64: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_P: tl.constexpr):
    """s[b,g,p] = Σ_k w[b,g,k] A[b,k,p] (reference: einsum("bgk,bkhw->bghw")).
    Program pid = m * cdiv(HW, BLOCK_P) + pb: map m = b*G + g, low-res positions
    pb*BLOCK_P + [0, BLOCK_P) (a 1-D grid: CUDA caps grid axis 1 at 65535)."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    nblk = tl.cdiv(HW, BLOCK_P)
    pid = tl.program_id(0).to(tl.int64)
    m = pid // nblk
    b = m // G
    p = (pid % nblk).to(tl.int32) * BLOCK_P + tl.arange(0, BLOCK_P)
    pmask = p < HW
    acc = tl.zeros([BLOCK_P], ACC)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        kmask = ks < K
        wk = tl.load(w_ptr + m * K + ks, mask=kmask, other=0.0).to(ACC)
        a = tl.load(A_ptr + (b * K + ks[:, None]) * HW + p[None, :],
                    mask=kmask[:, None] & pmask[None, :], other=0.0).to(ACC)
        acc += tl.sum(wk[:, None] * a, axis=0)
    tl.store(s_ptr + m * HW + p, acc.to(s_ptr.dtype.element_ty), mask=pmask)


@triton.jit
def _upsample_minmax_kernel(s_ptr, out_ptr, stats_ptr, h, w, H, W,
                            RELU: tl.constexpr, NORMALIZE: tl.constexpr, ALIGN: tl.constexpr,
                            F64: tl.constexpr, BLOCK: tl.constexpr):
    """u = bilinear_upsample(ReLU(s)) to (H, W) (F.interpolate, mode="bilinear",
    evaluated in ATen's order l0y*(l0x*a + l1x*b) + l1y*(l0x*c + l1x*d)),
    stats = (min u, max u - min u), out = (u - min)/range if NORMALIZE (0 for a
    constant map), else u. Program m: the whole map m (two passes over H*W)."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    m = tl.program_id(0).to(tl.int64)
    s_base = s_ptr + m * h * w
    o_base = out_ptr + m * H * W
    HWo = H * W
    lo_v = tl.full([BLOCK], float("inf"), ACC)
    hi_v = tl.full([BLOCK], float("-inf"), ACC)
    for q0 in range(0, HWo, BLOCK):
        q = q0 + tl.arange(0, BLOCK)
        qmask = q < HWo
        v = upsampled(s_base, q, qmask, h, w, H, W, RELU, ALIGN, F64)
        vs = v.to(out_ptr.dtype.element_ty)
        tl.store(o_base + q, vs, mask=qmask)
        v = vs.to(ACC)  # min/max of the values as stored (matters for fp16 outputs)
        lo_v = tl.minimum(lo_v, tl.where(qmask, v, float("inf")))
        hi_v = tl.maximum(hi_v, tl.where(qmask, v, float("-inf")))
    lo = tl.min(lo_v, axis=0)
    rng = tl.max(hi_v, axis=0) - lo
    tl.store(stats_ptr + 2 * m, lo.to(stats_ptr.dtype.element_ty))
    tl.store(stats_ptr + 2 * m + 1, rng.to(stats_ptr.dtype.element_ty))
    if NORMALIZE:
        tl.debug_barrier()  # loop 1's stores visible to every thread of the program
        pos = rng > 0.0
        safe = tl.where(pos, rng, 1.0)
        for q0 in range(0, HWo, BLOCK):
            q = q0 + tl.arange(0, BLOCK)
            qmask = q < HWo
            v = tl.load(o_base + q, mask=qmask, other=0.0).to(ACC)
            y = tl.where(pos, div_rn(v - lo, safe, F64), 0.0)
            tl.store(o_base + q, y.to(out_ptr.dtype.element_ty), mask=qmask)


# ----------------------------------------------------------------------------
# Backward
# ----------------------------------------------------------------------------
@triton.jit
def _minmax_shares_kernel(g_ptr, y_ptr, stats_ptr, shares_ptr, HW,
                          F64: tl.constexpr, BLOCK: tl.constexpr):
    """For y = (u - lo)/range: dL/dlo = Σ g (y - 1)/range and dL/dhi = -Σ g y/range,
    spread evenly over the elements at the minimum (y == 0) and the maximum
    (y == 1), torch.amin/amax's subgradient. shares[m] = (dL/dlo / #(y==0),
    dL/dhi / #(y==1)); zero for a constant map. Program m: map m."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    m = tl.program_id(0).to(tl.int64)
    g_lo = tl.zeros([BLOCK], ACC)
    g_hi = tl.zeros([BLOCK], ACC)
    n_lo = tl.zeros([BLOCK], tl.int32)
    n_hi = tl.zeros([BLOCK], tl.int32)
    for q0 in range(0, HW, BLOCK):
        q = q0 + tl.arange(0, BLOCK)
        qmask = q < HW
        g = tl.load(g_ptr + m * HW + q, mask=qmask, other=0.0).to(ACC)
        y = tl.load(y_ptr + m * HW + q, mask=qmask, other=0.5).to(ACC)
        g_lo += g * (y - 1.0)
        g_hi -= g * y
        n_lo += (qmask & (y == 0.0)).to(tl.int32)
        n_hi += (qmask & (y == 1.0)).to(tl.int32)
    rng = tl.load(stats_ptr + 2 * m + 1).to(ACC)
    safe = tl.where(rng > 0.0, rng, 1.0)
    c_lo = tl.sum(n_lo, axis=0)
    c_hi = tl.sum(n_hi, axis=0)
    lo_share = div_rn(div_rn(tl.sum(g_lo, axis=0), safe, F64), tl.maximum(c_lo, 1).to(ACC), F64)
    hi_share = div_rn(div_rn(tl.sum(g_hi, axis=0), safe, F64), tl.maximum(c_hi, 1).to(ACC), F64)
    ok = rng > 0.0
    tl.store(shares_ptr + 2 * m, tl.where(ok & (c_lo > 0), lo_share, 0.0))
    tl.store(shares_ptr + 2 * m + 1, tl.where(ok & (c_hi > 0), hi_share, 0.0))


@triton.jit
def _upsample_adjoint_cols_kernel(g_ptr, y_ptr, stats_ptr, shares_ptr, t_ptr, w, H, W, win_w,
                                  NORMALIZE: tl.constexpr, ALIGN: tl.constexpr,
                                  F64: tl.constexpr, BLOCK: tl.constexpr):
    """Adjoint of the horizontal linear interpolation: t[m, i, x] =
    Σ_j wx(j, x) gu[m, i, j], where wx(j, x) = l0(j)[i0(j) == x] + l1(j)[i1(j) == x]
    and gu = dL/du: g/range + min/max shares at ties (cam_combine_math.h's minmax_grad;
    0 for a constant map) if NORMALIZE, else g. Program pid = m * cdiv(H*w, BLOCK)
    + eb: cells e = i*w + x for e in eb*BLOCK + [0, BLOCK); each gathers from the
    output columns j ∈ [start(x), start(x) + win_w) that can touch x."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    nblk = tl.cdiv(H * w, BLOCK)
    pid = tl.program_id(0).to(tl.int64)
    m = pid // nblk
    e = (pid % nblk).to(tl.int32) * BLOCK + tl.arange(0, BLOCK)
    emask = e < H * w
    i = e // w
    x = e % w
    row = m * H * W + i * W
    if NORMALIZE:
        rng = tl.load(stats_ptr + 2 * m + 1).to(ACC)
        pos = rng > 0.0
        safe = tl.where(pos, rng, 1.0)
        lo_share = tl.load(shares_ptr + 2 * m)
        hi_share = tl.load(shares_ptr + 2 * m + 1)
    j_start = _window_start(x, w, W, ALIGN)
    acc = tl.zeros([BLOCK], ACC)
    for dj in range(0, win_w):
        j = j_start + dj
        x0, x1, l0, l1 = taps(j, w, W, ALIGN, F64)
        wt = tl.where(x0 == x, l0, 0.0) + tl.where(x1 == x, l1, 0.0)
        valid = emask & (j < W) & (wt != 0.0)
        g = tl.load(g_ptr + row + j, mask=valid, other=0.0).to(ACC)
        if NORMALIZE:
            yv = tl.load(y_ptr + row + j, mask=valid, other=0.5).to(ACC)
            gu = (div_rn(g, safe, F64) + tl.where(yv == 0.0, lo_share, 0.0)
                  + tl.where(yv == 1.0, hi_share, 0.0))
            gu = tl.where(pos, gu, 0.0)
        else:
            gu = g
        acc += wt * gu
    tl.store(t_ptr + m * H * w + e, acc, mask=emask)


@triton.jit
def _upsample_adjoint_rows_kernel(t_ptr, s_ptr, gs_ptr, h, w, H, win_h,
                                  RELU: tl.constexpr, ALIGN: tl.constexpr,
                                  F64: tl.constexpr, BLOCK: tl.constexpr):
    """Adjoint of the vertical linear interpolation and of the ReLU:
    g_s[m, y, x] = [s[m, y, x] > 0] Σ_i wy(i, y) t[m, i, x] (mask only if RELU).
    Program pid = m * cdiv(h*w, BLOCK) + pb: low-res cells p = y*w + x in
    pb*BLOCK + [0, BLOCK), each gathering from the output rows
    i ∈ [start(y), start(y) + win_h)."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    hw = h * w
    nblk = tl.cdiv(hw, BLOCK)
    pid = tl.program_id(0).to(tl.int64)
    m = pid // nblk
    p = (pid % nblk).to(tl.int32) * BLOCK + tl.arange(0, BLOCK)
    pmask = p < hw
    y = p // w
    x = p % w
    t_base = t_ptr + m * H * w
    i_start = _window_start(y, h, H, ALIGN)
    acc = tl.zeros([BLOCK], ACC)
    for di in range(0, win_h):
        i = i_start + di
        y0, y1, l0, l1 = taps(i, h, H, ALIGN, F64)
        wt = tl.where(y0 == y, l0, 0.0) + tl.where(y1 == y, l1, 0.0)
        valid = pmask & (i < H) & (wt != 0.0)
        tv = tl.load(t_base + i * w + x, mask=valid, other=0.0)
        acc += wt * tv
    if RELU:
        s = tl.load(s_ptr + m * hw + p, mask=pmask, other=0.0).to(ACC)
        acc = tl.where(s > 0.0, acc, 0.0)
    tl.store(gs_ptr + m * hw + p, acc, mask=pmask)


# ----------------------------------------------------------------------------
# Autotuned launchers (one config under TRITON_INTERPRET=1)
# ----------------------------------------------------------------------------
_weighted_sum = triton.autotune(
    configs({"BLOCK_K": 32, "BLOCK_P": 256}, 4,
            [({"BLOCK_K": 32, "BLOCK_P": 64}, 2), ({"BLOCK_K": 32, "BLOCK_P": 128}, 4),
             ({"BLOCK_K": 16, "BLOCK_P": 256}, 4), ({"BLOCK_K": 64, "BLOCK_P": 128}, 4),
             ({"BLOCK_K": 32, "BLOCK_P": 256}, 8)]),
    key=["K", "HW", "F64"])(_weighted_sum_kernel)

_upsample_minmax = triton.autotune(
    configs({"BLOCK": 1024}, 4,
            [({"BLOCK": 256}, 2), ({"BLOCK": 512}, 4), ({"BLOCK": 1024}, 4),
             ({"BLOCK": 2048}, 8)]),
    key=["h", "w", "H", "W", "F64"])(_upsample_minmax_kernel)

_minmax_shares = triton.autotune(
    configs({"BLOCK": 1024}, 4,
            [({"BLOCK": 512}, 4), ({"BLOCK": 1024}, 4), ({"BLOCK": 2048}, 8)]),
    key=["HW", "F64"])(_minmax_shares_kernel)

_adjoint_cols = triton.autotune(
    configs({"BLOCK": 256}, 4,
            [({"BLOCK": 64}, 2), ({"BLOCK": 128}, 4), ({"BLOCK": 256}, 4), ({"BLOCK": 512}, 8)]),
    key=["w", "H", "W", "F64"])(_upsample_adjoint_cols_kernel)

_adjoint_rows = triton.autotune(
    configs({"BLOCK": 256}, 4,
            [({"BLOCK": 64}, 2), ({"BLOCK": 128}, 4), ({"BLOCK": 256}, 4), ({"BLOCK": 512}, 8)]),
    key=["h", "w", "H", "F64"])(_upsample_adjoint_rows_kernel)

#: The raw @triton.jit kernels, for ahead-of-time compilation checks.
KERNELS = (_weighted_sum_kernel, _upsample_minmax_kernel, _minmax_shares_kernel,
           _upsample_adjoint_cols_kernel, _upsample_adjoint_rows_kernel)


# ----------------------------------------------------------------------------
# Host interface (as fastcam.kernels.cpp's)
# ----------------------------------------------------------------------------
def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def cam_combine_forward(A: Tensor, w: Tensor, H: int, W: int, relu: bool, normalize: bool,
                        align_corners: bool) -> tuple[Tensor, Tensor, Tensor]:
    """A (B,K,h,w) and w (B,G,K), contiguous, same dtype -> (out (B,G,H,W),
    s_low (B,G,h,w) the pre-ReLU sum, stats (B,G,2) = (min, max - min) of the
    upsampled map before scaling). See the module docstring for the kernels."""
    B, K, h, wd = A.shape
    G = w.shape[1]
    H, W = int(H), int(W)
    out = A.new_empty(B, G, H, W)
    s_low = A.new_empty(B, G, h, wd)
    stats = A.new_empty(B, G, 2)
    maps = B * G
    if maps == 0:
        return out, s_low, stats
    f64 = A.dtype == torch.float64
    with on_device(A.device):
        if h * wd > 0:
            _weighted_sum[lambda META: (maps * triton.cdiv(h * wd, META["BLOCK_P"]),)](
                A, w, s_low, G, K, h * wd, F64=f64)
        _upsample_minmax[(maps,)](s_low, out, stats, h, wd, H, W, RELU=bool(relu),
                                  NORMALIZE=bool(normalize), ALIGN=bool(align_corners), F64=f64)
    return out, s_low, stats


def cam_combine_backward(grad_out: Tensor, out: Tensor, A: Tensor, w: Tensor, s_low: Tensor,
                         stats: Tensor, relu: bool, normalize: bool,
                         align_corners: bool) -> tuple[Tensor, Tensor]:
    """Exact gradients (dA, dw) given the forward's saved tensors (all contiguous):
    min/max shares -> adjoint of the column then the row interpolation (gathers,
    no atomics) -> ReLU mask, giving g_s (B,G,h,w); then grad_w = g_s·Aᵀ and
    grad_A = wᵀ·g_s as torch.bmm (cuBLAS on GPU)."""
    B, K, h, wd = A.shape
    G, H, W = out.shape[1:]
    maps = B * G
    acc = _acc_dtype(A.dtype)
    f64 = A.dtype == torch.float64
    g_s = torch.zeros(B, G, h, wd, dtype=acc, device=A.device)
    if maps > 0 and h * wd > 0 and H * W > 0:
        t = torch.empty(B, G, H, wd, dtype=acc, device=A.device)  # column-adjoint rows
        shares = torch.zeros(B, G, 2, dtype=acc, device=A.device)
        with on_device(A.device):
            if normalize:
                _minmax_shares[(maps,)](grad_out, out, stats, shares, H * W, F64=f64)
            _adjoint_cols[lambda META: (maps * triton.cdiv(H * wd, META["BLOCK"]),)](
                grad_out, out, stats, shares, t, wd, H, W, _window(wd, W, align_corners),
                NORMALIZE=bool(normalize), ALIGN=bool(align_corners), F64=f64)
            _adjoint_rows[lambda META: (maps * triton.cdiv(h * wd, META["BLOCK"]),)](
                t, s_low, g_s, h, wd, H, _window(h, H, align_corners),
                RELU=bool(relu), ALIGN=bool(align_corners), F64=f64)
    # The two small contractions over p (grad_w) and g (grad_A): torch.bmm.
    gs = g_s.view(B, G, h * wd)
    grad_w = torch.bmm(gs, A.view(B, K, h * wd).to(acc).transpose(1, 2))
    grad_A = torch.bmm(w.to(acc).transpose(1, 2), gs).view(B, K, h, wd)
    return grad_A.to(A.dtype), grad_w.to(w.dtype)
