"""Triton kernel of rank_reveal: chunks of perturbed model inputs revealing
pixels in saliency order (RISE insertion/deletion), already normalised for the
model. The definition is :mod:`fastcam.kernels.reference.rank_reveal` (``rank_reveal``); the
interface is :mod:`fastcam.kernels.cpp`'s (1/std instead of std, None for an
absent optional tensor).

  ``_rank_reveal_kernel``  grid (n * cdiv(H*W, BLOCK),) (a 1-D grid, so neither n
                           nor H*W is bounded by CUDA's 65535 limit on the grid's
                           y dimension): program (j, block) loads rank[index[j], p]
                           for its BLOCK pixels once, keep = rank < counts[j],
                           then for every channel v = keep ? src : dst (each
                           loaded only where it is selected; None -> 0) and
                           writes ``(v − mean)·inv_std``.

Optional tensors are constexpr flags (HAS_SRC, HAS_DST, HAS_MEAN, HAS_STD): an
absent one costs no load. Computation is in the data's dtype, float32 or float64.
"""
from __future__ import annotations

import triton
import triton.language as tl
from torch import Tensor

from ._common import configs, on_device


# ----------------------------------------------------------------------------
# Kernel
# ----------------------------------------------------------------------------
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
# Autotuned launcher (one config under TRITON_INTERPRET=1)
# ----------------------------------------------------------------------------
_rank_reveal = triton.autotune(
    configs({"BLOCK": 1024}, 4,
            [({"BLOCK": 256}, 2), ({"BLOCK": 512}, 4), ({"BLOCK": 1024}, 4),
             ({"BLOCK": 1024}, 8), ({"BLOCK": 2048}, 8)]),
    key=["C", "HW", "HAS_SRC", "HAS_DST", "HAS_MEAN", "HAS_STD"])(_rank_reveal_kernel)

#: The raw @triton.jit kernels, for ahead-of-time compilation checks.
KERNELS = (_rank_reveal_kernel,)


# ----------------------------------------------------------------------------
# Host interface (as fastcam.kernels.cpp's)
# ----------------------------------------------------------------------------
def rank_reveal(rank: Tensor, counts: Tensor, index: Tensor, src: Tensor | None,
                dst: Tensor | None, mean: Tensor | None, inv_std: Tensor | None) -> Tensor:
    """See reference.rank_reveal (here with 1/std). rank (B, H*W), counts and
    index (n,) int64; src/dst (B,C,H,W) or None (zeros, not both); mean,
    inv_std (C,) or None -> (n,C,H,W); all contiguous, the floating-point ones
    of one dtype (float32 or float64)."""
    ref = src if src is not None else dst
    B, C, H, W = ref.shape
    HW = H * W
    n = index.numel()
    out = ref.new_empty(n, C, H, W)
    if n == 0 or C == 0 or HW == 0:
        return out
    dummy = ref
    with on_device(ref.device):
        _rank_reveal[lambda META: (n * triton.cdiv(HW, META["BLOCK"]),)](
            dummy if src is None else src, dummy if dst is None else dst, rank, counts, index,
            dummy if mean is None else mean, dummy if inv_std is None else inv_std, out, C, HW,
            HAS_SRC=src is not None, HAS_DST=dst is not None, HAS_MEAN=mean is not None,
            HAS_STD=inv_std is not None)
    return out
