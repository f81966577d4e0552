"""Triton kernels that build chunks of perturbed model inputs, already normalised
for the model: ``mask_blend`` (Score-CAM's ``X ∘ H_k``, blends with a baseline)
and ``rank_reveal`` (RISE insertion/deletion). The definitions are
:mod:`fastcam.kernels.reference` (``mask_blend`` / ``rank_reveal``); the interface
mirrors :mod:`fastcam.kernels.cpu` (1/std instead of std, None for an absent
optional tensor) and the per-element maths mirrors ``csrc/common/cam_math.h``
(``bilinear_tap``, ``mask_scale``, ``blend_pixel``).

Kernels (programs over "pixel blocks": BLOCK consecutive positions of one H*W
plane; a 1-D grid, so neither n nor H*W is bounded by CUDA's 65535 limit on the
grid's y dimension):

mask_blend
  ``_map_minmax_kernel``   grid (n,): one program per map j. Loops over the H*W
                           output pixels in BLOCK chunks, evaluating the bilinear
                           upsampling u = up(maps[j]) (ATen's taps and order,
                           as cam_combine's kernel) and keeping a running min/max;
                           stores stats[j] = (min u, max u − min u). Nothing of
                           size H*W is stored.
  ``_mask_blend_kernel``   grid (n * cdiv(H*W, BLOCK),): program (j, block)
                           recomputes u for its pixels (four gathers from the
                           small, cache-resident map: cheaper than writing and
                           re-reading an (n, H*W) mask buffer), scales it once,
                           m = (u − lo)/(range + eps) (0 where range + eps <= 0),
                           then loops over the C channels writing
                           ``(x·m + b·(1 − m) − mean)·inv_std`` with x, b the
                           channel of image index[j] and of its baseline. The two
                           kernels evaluate u through the same @jit helper, so
                           the recomputed u equals the one whose min/max was taken.
rank_reveal
  ``_rank_reveal_kernel``  grid (n * cdiv(H*W, BLOCK),): program (j, block) loads
                           rank[index[j], p] once, keep = rank < counts[j], then
                           for every channel v = keep ? src : dst (each loaded
                           only where it is selected; None -> 0) and writes
                           ``(v − mean)·inv_std``.

Optional tensors are constexpr flags (HAS_BASELINE, HAS_MEAN, HAS_STD, HAS_SRC,
HAS_DST): an absent one costs no load. Computation is in the data's dtype,
float32 or float64; min-max scaling divides with IEEE rounding (tl.math.div_rn
in float32, as ``/`` is approximate on NVIDIA GPUs). ``eps`` is a float64
argument (rounded to float32 in the kernel for float32 data, as the C++ kernels
and torch do).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .._host import contig
from .cam_combine import _INTERPRET, _configs, _div, _on, _taps

_DTYPES = (torch.float32, torch.float64)


# ----------------------------------------------------------------------------
# Device helpers
# ----------------------------------------------------------------------------
@triton.jit
def _upsampled(map_base, q, qmask, h, w, H, W, ALIGN: tl.constexpr, F64: tl.constexpr):
    """u at output positions q (flattened i*W + j) of the bilinear upsampling of
    the (h, w) map at map_base to (H, W): F.interpolate(mode="bilinear"), in
    ATen's order l0y*(l0x*a + l1x*b) + l1y*(l0x*c + l1x*d)."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    i = q // W
    j = q % W
    y0, y1, ly0, ly1 = _taps(i, h, H, ALIGN, F64)
    x0, x1, lx0, lx1 = _taps(j, w, W, ALIGN, F64)
    a = tl.load(map_base + y0 * w + x0, mask=qmask, other=0.0).to(ACC)
    b = tl.load(map_base + y0 * w + x1, mask=qmask, other=0.0).to(ACC)
    c = tl.load(map_base + y1 * w + x0, mask=qmask, other=0.0).to(ACC)
    d = tl.load(map_base + y1 * w + x1, mask=qmask, other=0.0).to(ACC)
    return ly0 * (lx0 * a + lx1 * b) + ly1 * (lx0 * c + lx1 * d)


# ----------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------
@triton.jit
def _map_minmax_kernel(maps_ptr, stats_ptr, h, w, H, W,
                       ALIGN: tl.constexpr, F64: tl.constexpr, BLOCK: tl.constexpr):
    """stats[j] = (min u, max u − min u) of u = up(maps[j]) to (H, W).
    Program j: map j, one pass over its H*W upsampled pixels."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    m = tl.program_id(0).to(tl.int64)
    map_base = maps_ptr + m * h * w
    HW = H * W
    lo_v = tl.full([BLOCK], float("inf"), ACC)
    hi_v = tl.full([BLOCK], float("-inf"), ACC)
    for q0 in range(0, HW, BLOCK):
        q = q0 + tl.arange(0, BLOCK)
        qmask = q < HW
        u = _upsampled(map_base, q, qmask, h, w, H, W, ALIGN, F64)
        lo_v = tl.minimum(lo_v, tl.where(qmask, u, float("inf")))
        hi_v = tl.maximum(hi_v, tl.where(qmask, u, float("-inf")))
    lo = tl.min(lo_v, axis=0)
    rng = tl.max(hi_v, axis=0) - lo
    tl.store(stats_ptr + 2 * m, lo.to(stats_ptr.dtype.element_ty))
    tl.store(stats_ptr + 2 * m + 1, rng.to(stats_ptr.dtype.element_ty))


@triton.jit
def _mask_blend_kernel(x_ptr, base_ptr, maps_ptr, index_ptr, mean_ptr, inv_std_ptr, stats_ptr,
                       out_ptr, eps: tl.float64, C, h, w, H, W,
                       HAS_BASELINE: tl.constexpr, HAS_MEAN: tl.constexpr,
                       HAS_STD: tl.constexpr, ALIGN: tl.constexpr, F64: tl.constexpr,
                       BLOCK: tl.constexpr):
    """out[j, c] = (x[i, c]·m_j + baseline[i, c]·(1 − m_j) − mean[c])·inv_std[c],
    i = index[j], m_j = (u − lo)/(range + eps) (0 where range + eps <= 0)
    (cam_math.h's mask_scale and blend_pixel; absent baseline/mean/inv_std read as
    0/0/1). Program pid = j * cdiv(H*W, BLOCK) + block: map j, BLOCK pixels, all
    C channels."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    HW = H * W
    nblk = tl.cdiv(HW, BLOCK)
    pid = tl.program_id(0).to(tl.int64)
    m = pid // nblk
    q = (pid % nblk).to(tl.int32) * BLOCK + tl.arange(0, BLOCK)
    qmask = q < HW
    u = _upsampled(maps_ptr + m * h * w, q, qmask, h, w, H, W, ALIGN, F64)
    lo = tl.load(stats_ptr + 2 * m).to(ACC)
    den = tl.load(stats_ptr + 2 * m + 1).to(ACC) + tl.full([], eps, ACC)
    pos = den > 0.0
    mk = tl.where(pos, _div(u - lo, tl.where(pos, den, 1.0), F64), 0.0)
    b = tl.load(index_ptr + m).to(tl.int64)
    for c in range(0, C):
        src = (b * C + c) * HW
        xv = tl.load(x_ptr + src + q, mask=qmask, other=0.0).to(ACC)
        if HAS_BASELINE:
            bv = tl.load(base_ptr + src + q, mask=qmask, other=0.0).to(ACC)
            v = xv * mk + bv * (1.0 - mk)
        else:
            v = xv * mk
        if HAS_MEAN:
            v = v - tl.load(mean_ptr + c).to(ACC)
        if HAS_STD:
            v = v * tl.load(inv_std_ptr + c).to(ACC)
        tl.store(out_ptr + (m * C + c) * HW + q, v.to(out_ptr.dtype.element_ty), mask=qmask)


@triton.jit
def _rank_reveal_kernel(src_ptr, dst_ptr, rank_ptr, counts_ptr, index_ptr, mean_ptr,
                        inv_std_ptr, out_ptr, C, HW,
                        HAS_SRC: tl.constexpr, HAS_DST: tl.constexpr, HAS_MEAN: tl.constexpr,
                        HAS_STD: tl.constexpr, BLOCK: tl.constexpr):
    """out[j, c, p] = (where(rank[i, p] < counts[j], src[i, c, p], dst[i, c, p])
    − mean[c])·inv_std[c], i = index[j]; absent src/dst read as 0, absent
    mean/inv_std as 0/1. Program pid = j * cdiv(HW, BLOCK) + block."""
    DT: tl.constexpr = out_ptr.dtype.element_ty
    nblk = tl.cdiv(HW, BLOCK)
    pid = tl.program_id(0).to(tl.int64)
    j = pid // nblk
    p = (pid % nblk).to(tl.int32) * BLOCK + tl.arange(0, BLOCK)
    pmask = p < HW
    b = tl.load(index_ptr + j).to(tl.int64)
    k = tl.load(counts_ptr + j).to(tl.int64)
    r = tl.load(rank_ptr + b * HW + p, mask=pmask, other=0).to(tl.int64)
    keep = r < k
    for c in range(0, C):
        off = (b * C + c) * HW + p
        if HAS_SRC:
            s = tl.load(src_ptr + off, mask=pmask & keep, other=0.0).to(DT)
        else:
            s = tl.zeros([BLOCK], DT)
        if HAS_DST:
            d = tl.load(dst_ptr + off, mask=pmask & (r >= k), other=0.0).to(DT)
        else:
            d = tl.zeros([BLOCK], DT)
        v = tl.where(keep, s, d)
        if HAS_MEAN:
            v = v - tl.load(mean_ptr + c).to(DT)
        if HAS_STD:
            v = v * tl.load(inv_std_ptr + c).to(DT)
        tl.store(out_ptr + (j * C + c) * HW + p, v, mask=pmask)


# ----------------------------------------------------------------------------
# Autotuned launchers (one config under TRITON_INTERPRET=1)
# ----------------------------------------------------------------------------
_map_minmax = triton.autotune(
    _configs({"BLOCK": 1024}, 4,
             [({"BLOCK": 256}, 2), ({"BLOCK": 512}, 4), ({"BLOCK": 1024}, 4),
              ({"BLOCK": 2048}, 8)]),
    key=["h", "w", "H", "W", "ALIGN", "F64"])(_map_minmax_kernel)

_mask_blend = triton.autotune(
    _configs({"BLOCK": 1024}, 4,
             [({"BLOCK": 256}, 2), ({"BLOCK": 512}, 4), ({"BLOCK": 1024}, 4),
              ({"BLOCK": 1024}, 8), ({"BLOCK": 2048}, 8)]),
    key=["C", "h", "w", "H", "W", "HAS_BASELINE", "HAS_MEAN", "HAS_STD", "ALIGN", "F64"])(
        _mask_blend_kernel)

_rank_reveal = triton.autotune(
    _configs({"BLOCK": 1024}, 4,
             [({"BLOCK": 256}, 2), ({"BLOCK": 512}, 4), ({"BLOCK": 1024}, 4),
              ({"BLOCK": 1024}, 8), ({"BLOCK": 2048}, 8)]),
    key=["C", "HW", "HAS_SRC", "HAS_DST", "HAS_MEAN", "HAS_STD"])(_rank_reveal_kernel)

#: The raw @triton.jit kernels, for ahead-of-time compilation checks.
KERNELS = (_map_minmax_kernel, _mask_blend_kernel, _rank_reveal_kernel)


# ----------------------------------------------------------------------------
# Host interface (mirrors fastcam.kernels.cpu)
# ----------------------------------------------------------------------------
def _check(name: str, ref: Tensor, *others: Tensor | None) -> None:
    if ref.dtype not in _DTYPES or any(t is not None and t.dtype != ref.dtype for t in others):
        raise TypeError(f"fastcam Triton {name} takes float32 or float64 tensors of one dtype, "
                        f"got {[t.dtype for t in (ref, *others) if t is not None]}")
    if ref.device.type != "cuda" and not _INTERPRET:
        raise RuntimeError("fastcam Triton kernels run CUDA tensors (or CPU tensors when "
                           "TRITON_INTERPRET=1 was set before importing them), got "
                           f"{ref.device.type}")


def mask_blend(x: Tensor, maps: Tensor, index: Tensor, baseline: Tensor | None,
               mean: Tensor | None, inv_std: Tensor | None, eps: float,
               align_corners: bool) -> Tensor:
    """See reference.mask_blend (here with 1/std). x, baseline (B,C,H,W); maps
    (n,h,w); index (n,) int64; mean, inv_std (C,) or None -> (n,C,H,W)."""
    _check("mask_blend", x, maps, baseline, mean, inv_std)
    x, maps, baseline = x.contiguous(), maps.contiguous(), contig(baseline)
    mean, inv_std = contig(mean), contig(inv_std)
    index = index.to(device=x.device, dtype=torch.long).contiguous()
    B, C, H, W = x.shape
    n, h, w = maps.shape
    out = x.new_empty(n, C, H, W)
    if n == 0 or C == 0 or H * W == 0:
        return out
    if h * w == 0:
        raise ValueError(f"maps of size {(h, w)} cannot be upsampled to {(H, W)}")
    f64 = x.dtype == torch.float64
    align = bool(align_corners)
    stats = x.new_empty(n, 2)  # (min, max - min) of each upsampled map
    dummy = x  # pointer for absent optional tensors (never read)
    with _on(x.device):
        _map_minmax[(n,)](maps, stats, h, w, H, W, ALIGN=align, F64=f64)
        _mask_blend[lambda META: (n * triton.cdiv(H * W, META["BLOCK"]),)](
            x, dummy if baseline is None else baseline, maps, index,
            dummy if mean is None else mean, dummy if inv_std is None else inv_std, stats, out,
            float(eps), C, h, w, H, W, HAS_BASELINE=baseline is not None,
            HAS_MEAN=mean is not None, HAS_STD=inv_std is not None, ALIGN=align, F64=f64)
    return out


def rank_reveal(rank: Tensor, counts: Tensor, index: Tensor, src: Tensor | None,
                dst: Tensor | None, mean: Tensor | None, inv_std: Tensor | None) -> Tensor:
    """See reference.rank_reveal (here with 1/std). rank (B, H*W), counts and
    index (n,) integer; src/dst (B,C,H,W) or None (zeros, not both); mean,
    inv_std (C,) or None -> (n,C,H,W)."""
    ref = src if src is not None else dst
    if ref is None:
        raise ValueError("src and dst cannot both be None")
    _check("rank_reveal", ref, src, dst, mean, inv_std)
    src, dst, mean, inv_std = contig(src), contig(dst), contig(mean), contig(inv_std)
    rank = rank.to(device=ref.device, dtype=torch.long).contiguous()
    counts = counts.to(device=ref.device, dtype=torch.long).contiguous()
    index = index.to(device=ref.device, dtype=torch.long).contiguous()
    B, C, H, W = ref.shape
    HW = H * W
    n = index.numel()
    out = ref.new_empty(n, C, H, W)
    if n == 0 or C == 0 or HW == 0:
        return out
    dummy = ref
    with _on(ref.device):
        _rank_reveal[lambda META: (n * triton.cdiv(HW, META["BLOCK"]),)](
            dummy if src is None else src, dummy if dst is None else dst, rank, counts, index,
            dummy if mean is None else mean, dummy if inv_std is None else inv_std, out, C, HW,
            HAS_SRC=src is not None, HAS_DST=dst is not None, HAS_MEAN=mean is not None,
            HAS_STD=inv_std is not None)
    return out
