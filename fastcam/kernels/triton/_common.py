"""What fastcam's Triton kernels share: the autotuning configurations, the
launch device, and the @jit helpers of bilinear upsampling and IEEE division
(the per-element maths of ``csrc/common/bilinear.h`` and ``cam_combine_math.h``)."""
from __future__ import annotations

import contextlib
import os

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def configs(interpret_cfg: dict, interpret_warps: int, gpu: list[tuple[dict, int]]):
    """Autotuning configurations: several on GPU, exactly one under the interpreter
    (where benchmarking is meaningless and every program instance costs ~1 ms)."""
    if INTERPRET:
        return [triton.Config(interpret_cfg, num_warps=interpret_warps)]
    return [triton.Config(kw, num_warps=nw) for kw, nw in gpu]


def on_device(device: torch.device):
    """Make ``device`` current so that Triton launches there (on its current stream)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


@triton.jit
def div_rn(a, b, F64: tl.constexpr):
    """a / b rounded to nearest (IEEE). Triton's float32 ``/`` is approximate on
    NVIDIA GPUs; min-max scaling needs x/x == 1 exactly so that the backward pass
    can find the maximum by ``y == 1`` (as cam_combine_math.h's minmax_scale)."""
    if F64:
        q = a / b
    else:
        q = tl.math.div_rn(a, b)
    return q


@triton.jit
def taps(dst, in_size, out_size, ALIGN: tl.constexpr, F64: tl.constexpr):
    """Source taps (i0, i1) and weights (l0, l1) of output index ``dst`` when
    resizing ``in_size`` -> ``out_size`` linearly, as ATen's
    area_pixel_compute_source_index + guard_index_and_lambda (and bilinear.h's
    bilinear_tap): align_corners=False: src = max(0, (dst + 0.5) * in/out - 0.5);
    align_corners=True: src = dst * (in - 1)/(out - 1) (0 when out == 1).
    Sizes go through tl.cast: Triton's JIT passes an int argument equal to 1 as a
    compile-time constant (a Python int, which has no ``.to``)."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    d = tl.cast(dst, ACC)
    n_in = tl.cast(in_size, tl.int32)    # a tensor also when the JIT made the size a
    n_out = tl.cast(out_size, tl.int32)  # constexpr (it does so for an int equal to 1)
    if ALIGN:
        scale = div_rn(tl.cast(n_in - 1, ACC), tl.cast(tl.maximum(n_out - 1, 1), ACC), F64)
        scale = tl.where(n_out > 1, scale, 0.0)
        src = scale * d
    else:
        scale = div_rn(tl.cast(n_in, ACC), tl.cast(n_out, ACC), F64)
        src = tl.maximum(scale * (d + 0.5) - 0.5, 0.0)
    i0 = tl.minimum(src.to(tl.int32), in_size - 1)
    i1 = i0 + (i0 < in_size - 1).to(tl.int32)
    l1 = tl.minimum(tl.maximum(src - i0.to(ACC), 0.0), 1.0)
    l0 = 1.0 - l1
    return i0, i1, l0, l1


@triton.jit
def upsampled(map_base, q, qmask, h, w, H, W, RELU: tl.constexpr, ALIGN: tl.constexpr,
              F64: tl.constexpr):
    """u at output positions q (flattened i*W + j) of the bilinear upsampling of
    the (h, w) map at map_base to (H, W), of ReLU(map) if RELU:
    F.interpolate(mode="bilinear"), in ATen's order
    l0y*(l0x*a + l1x*b) + l1y*(l0x*c + l1x*d) (bilinear.h's bilinear_mix)."""
    ACC: tl.constexpr = tl.float64 if F64 else tl.float32
    i = q // W
    j = q % W
    y0, y1, ly0, ly1 = taps(i, h, H, ALIGN, F64)
    x0, x1, lx0, lx1 = taps(j, w, W, ALIGN, F64)
    a = tl.load(map_base + y0 * w + x0, mask=qmask, other=0.0).to(ACC)
    b = tl.load(map_base + y0 * w + x1, mask=qmask, other=0.0).to(ACC)
    c = tl.load(map_base + y1 * w + x0, mask=qmask, other=0.0).to(ACC)
    d = tl.load(map_base + y1 * w + x1, mask=qmask, other=0.0).to(ACC)
    if RELU:
        a = tl.maximum(a, 0.0)
        b = tl.maximum(b, 0.0)
        c = tl.maximum(c, 0.0)
        d = tl.maximum(d, 0.0)
    return ly0 * (lx0 * a + lx1 * b) + ly1 * (lx0 * c + lx1 * d)
