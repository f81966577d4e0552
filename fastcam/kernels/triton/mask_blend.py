"""Triton kernels of mask_blend: chunks of perturbed model inputs built from
low-resolution maps (Score-CAM's ``X ∘ H_k``, blends with a baseline), already
normalised for the model. The definition is :mod:`fastcam.kernels.reference.mask_blend`
(``mask_blend``); the interface is :mod:`fastcam.kernels.cpp`'s (1/std instead
of std, None for an absent optional tensor) and the per-element maths mirrors
``csrc/common/bilinear.h`` (``bilinear_tap``, ``bilinear_mix``) and
``mask_blend_math.h`` (``mask_scale``, ``blend_pixel``).

Kernels (programs over "pixel blocks": BLOCK consecutive positions of one H*W
plane; a 1-D grid, so neither n nor H*W is bounded by CUDA's 65535 limit on the
grid's y dimension):

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
                           kernels evaluate u through the same @jit helper
                           (``_common.upsampled``), so the recomputed u equals the
                           one whose min/max was taken.

Optional tensors are constexpr flags (HAS_BASELINE, HAS_MEAN, HAS_STD): an
absent one costs no load. Computation is in the data's dtype, float32 or
float64; min-max scaling divides with IEEE rounding (tl.math.div_rn in float32,
as ``/`` is approximate on NVIDIA GPUs). ``eps`` is a float64 argument (rounded
to float32 in the kernel for float32 data, as the C++ kernels and torch do).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from ._common import configs, div_rn, on_device, upsampled


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
        u = upsampled(map_base, q, qmask, h, w, H, W, False, ALIGN, F64)
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
    (mask_blend_math.h's mask_scale and blend_pixel; absent baseline/mean/inv_std read as
    0/0/1). Program pid = j * cdiv(H*W, BLOCK) + block: map j, BLOCK pixels, all
    C channels."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    HW = H * W
    nblk = tl.cdiv(HW, BLOCK)
    pid = tl.program_id(0).to(tl.int64)
    m = pid // nblk
    q = (pid % nblk).to(tl.int32) * BLOCK + tl.arange(0, BLOCK)
    qmask = q < HW
    u = upsampled(maps_ptr + m * h * w, q, qmask, h, w, H, W, False, ALIGN, F64)
    lo = tl.load(stats_ptr + 2 * m).to(ACC)
    den = tl.load(stats_ptr + 2 * m + 1).to(ACC) + tl.full([], eps, ACC)
    pos = den > 0.0
    mk = tl.where(pos, div_rn(u - lo, tl.where(pos, den, 1.0), F64), 0.0)
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


# ----------------------------------------------------------------------------
# Autotuned launchers (one config under TRITON_INTERPRET=1)
# ----------------------------------------------------------------------------
_map_minmax = triton.autotune(
    configs({"BLOCK": 1024}, 4,
            [({"BLOCK": 256}, 2), ({"BLOCK": 512}, 4), ({"BLOCK": 1024}, 4),
             ({"BLOCK": 2048}, 8)]),
    key=["h", "w", "H", "W", "ALIGN", "F64"])(_map_minmax_kernel)

_mask_blend = triton.autotune(
    configs({"BLOCK": 1024}, 4,
            [({"BLOCK": 256}, 2), ({"BLOCK": 512}, 4), ({"BLOCK": 1024}, 4),
             ({"BLOCK": 1024}, 8), ({"BLOCK": 2048}, 8)]),
    key=["C", "h", "w", "H", "W", "HAS_BASELINE", "HAS_MEAN", "HAS_STD", "ALIGN", "F64"])(
        _mask_blend_kernel)

#: The raw @triton.jit kernels, for ahead-of-time compilation checks.
KERNELS = (_map_minmax_kernel, _mask_blend_kernel)


# ----------------------------------------------------------------------------
# Host interface (as fastcam.kernels.cpp's)
# ----------------------------------------------------------------------------
def mask_blend(x: Tensor, maps: Tensor, index: Tensor, baseline: Tensor | None,
               mean: Tensor | None, inv_std: Tensor | None, eps: float,
               align_corners: bool) -> Tensor:
    """See reference.mask_blend (here with 1/std). x, baseline (B,C,H,W); maps
    (n,h,w); index (n,) int64; mean, inv_std (C,) or None -> (n,C,H,W); all
    contiguous, the floating-point ones of one dtype (float32 or float64)."""
    B, C, H, W = x.shape
    n, h, w = maps.shape
    out = x.new_empty(n, C, H, W)
    if n == 0 or C == 0 or H * W == 0:
        return out
    f64 = x.dtype == torch.float64
    align = bool(align_corners)
    stats = x.new_empty(n, 2)  # (min, max - min) of each upsampled map
    dummy = x  # pointer for absent optional tensors (never read)
    with on_device(x.device):
        _map_minmax[(n,)](maps, stats, h, w, H, W, ALIGN=align, F64=f64)
        _mask_blend[lambda META: (n * triton.cdiv(H * W, META["BLOCK"]),)](
            x, dummy if baseline is None else baseline, maps, index,
            dummy if mean is None else mean, dummy if inv_std is None else inv_std, stats, out,
            float(eps), C, h, w, H, W, HAS_BASELINE=baseline is not None,
            HAS_MEAN=mean is not None, HAS_STD=inv_std is not None, ALIGN=align, F64=f64)
    return out
