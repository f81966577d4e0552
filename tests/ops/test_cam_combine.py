"""cam_combine: every backend against the eager reference
(fastcam/kernels/reference.py), forward and backward.

- The parity harness: the op through every compiled backend (cpp; triton under
  TRITON_INTERPRET=1; cuda, skipped without a GPU) x dtype x layout
  (contiguous, non-contiguous, channels_last) x shape (odd sizes, G > 1, 1x1
  and 1-row maps, a single output pixel, batch 1 with large K).
- C++/OpenMP: the kernel directly, gradcheck, constant maps, dtypes, the op's
  checks, opcheck and torch.compile.
- Triton (fastcam/kernels/triton/cam_combine.py): the kernels directly under
  TRITON_INTERPRET=1 (set by conftest.py before any import) and through the op,
  and every kernel compiled ahead of time for sm_80 and sm_90 (no GPU needed:
  triton.compile with a CUDA GPUTarget must give PTX, and a cubin through
  ptxas; see tests/_triton_aot.py).
- CUDA: the kernels against the reference and the C++ kernels, on a GPU only.
"""
import pytest
import torch

import fastcam
from _parity import (BACKENDS, F32, F64, LAYOUTS, device_of, in_layout, needs_gpu, triton_interp,
                     triton_module)
from _triton_aot import assert_compiled, assert_size_one_compiled, compile_for_gpu, size_one_jobs
from fastcam.kernels import cpp, reference

ALL_FLAGS = [(r, n, a) for r in (True, False) for n in (True, False) for a in (False, True)]


# ----------------------------------------------------------------------------
# The parity harness: every backend x dtype x layout x shape
# ----------------------------------------------------------------------------
PARITY_CASES = {  # name: (B, G, K, h, w, H, W), (relu, normalize, align_corners)
    "odd": ((2, 1, 5, 3, 5, 17, 11), (True, True, False)),
    "groups": ((2, 3, 4, 4, 3, 9, 13), (False, True, True)),
    "map1x1": ((1, 1, 3, 1, 1, 5, 4), (True, True, True)),     # align_corners: weights (1, 0)
    "row": ((2, 1, 3, 1, 6, 4, 9), (False, True, False)),       # 1-row low-res map
    "pixel": ((1, 2, 3, 4, 3, 1, 1), (False, False, False)),    # to a single pixel
    "largeK": ((1, 1, 300, 2, 3, 7, 5), (True, True, False)),   # batch 1, large K
}
def _parity_tol(backend, dtype):
    """(forward, gradient) tolerances; gradients' atol scales with their size."""
    if dtype == F64:
        if backend == "cuda":
            return dict(atol=1e-10, rtol=1e-9), dict(atol=1e-10, rtol=1e-9)
        return dict(atol=1e-12, rtol=1e-10), dict(atol=1e-10, rtol=1e-8)
    if backend == "cuda":
        return dict(atol=1e-4, rtol=1e-4), dict(atol=2e-3, rtol=2e-3)
    return dict(atol=1e-5, rtol=1e-4), dict(atol=2e-4, rtol=1e-3)


@pytest.mark.parametrize("case", list(PARITY_CASES))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_parity(backend, dtype, layout, case):
    (B, G, K, h, w, H, W), (relu, normalize, ac) = PARITY_CASES[case]
    fastcam.set_backend(backend)
    dev = device_of(backend)
    A0 = torch.randn(B, K, h, w, dtype=dtype)
    w0 = torch.randn(B, G, K, dtype=dtype)
    g = torch.randn(B, G, H, W, dtype=dtype)
    A, wt = in_layout(A0.to(dev), layout), in_layout(w0.to(dev), layout)
    if G == 1:
        wt = wt[:, 0]
        g = g[:, 0]
    A.requires_grad_(True)
    wt.requires_grad_(True)
    out = fastcam.ops.cam_combine(A, wt, (H, W), relu, normalize, ac)
    gA, gw = torch.autograd.grad(out, (A, wt), g.to(dev))

    rA = A0.clone().requires_grad_(True)
    rw = (w0[:, 0] if G == 1 else w0).clone().requires_grad_(True)
    r_out = reference.cam_combine(rA, rw, (H, W), relu, normalize, ac)
    r_gA, r_gw = torch.autograd.grad(r_out, (rA, rw), g)
    tol, gtol = _parity_tol(backend, dtype)
    assert out.shape == r_out.shape and out.dtype == dtype and out.device.type == dev
    torch.testing.assert_close(out.cpu(), r_out.detach(), **tol)
    scale = max(1.0, r_gA.abs().max().item(), r_gw.abs().max().item())
    gtol = dict(atol=gtol["atol"] * scale, rtol=gtol["rtol"])
    torch.testing.assert_close(gA.cpu(), r_gA, **gtol)
    torch.testing.assert_close(gw.cpu(), r_gw, **gtol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_op_checks(backend):
    # One check per condition, at the op, before any backend runs.
    fastcam.set_backend(backend)
    A = torch.randn(2, 4, 3, 3, device=device_of(backend))
    with pytest.raises(ValueError, match="cannot be upsampled"):
        fastcam.ops.cam_combine(A[:, :, :0], A.new_ones(2, 4), 8)
    with pytest.raises(ValueError, match="size"):
        fastcam.ops.cam_combine(A, A.new_ones(2, 4), (8, 0))
    with pytest.raises(ValueError, match="does not match"):
        fastcam.ops.cam_combine(A, A.new_ones(2, 3), 8)


@pytest.mark.parametrize("flags", [(True, True, False), (False, True, True), (True, False, False)])
def test_reference_backend_backward_through_the_op(flags):
    # The reference backward runs inside the custom op, where autograd's dispatch
    # keys are off (torch.autograd.grad raised there): its gradients must equal
    # autograd through the eager definition, outside any op.
    fastcam.set_backend("reference")
    A = torch.randn(2, 4, 3, 5, dtype=F64, requires_grad=True)
    w = torch.randn(2, 2, 4, dtype=F64, requires_grad=True)
    g = torch.randn(2, 2, 7, 6, dtype=F64)
    gA, gw = torch.autograd.grad(fastcam.ops.cam_combine(A, w, (7, 6), *flags), (A, w), g)
    r_gA, r_gw = torch.autograd.grad(reference.cam_combine(A, w, (7, 6), *flags), (A, w), g)
    assert gA.abs().sum() > 0
    torch.testing.assert_close(gA, r_gA, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gw, r_gw, rtol=1e-12, atol=1e-12)
    torch.autograd.gradcheck(lambda A, w: fastcam.ops.cam_combine(A, w, (7, 6), *flags), (A, w))


def test_opticam_runs_on_the_reference_backend():
    # Opti-CAM differentiates through cam_combine: on the reference backend (the
    # "auto" fallback on CUDA without triton or a CUDA build) it gives the maps
    # the C++ backend gives.
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(6, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(8, 5)).eval()
    x = torch.rand(2, 3, 16, 16)
    maps = {}
    for backend in ("reference", "cpp"):
        fastcam.set_backend(backend)
        with fastcam.OptiCAM(model, target_layers=["3"], max_iter=5) as cam:
            maps[backend] = cam(x, targets=[1, 3])
    assert maps["reference"].shape == (2, 16, 16)
    torch.testing.assert_close(maps["reference"], maps["cpp"], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------
# C++/OpenMP
# ----------------------------------------------------------------------------
SHAPES = [  # B, G, K, h, w, H, W
    (1, 1, 1, 1, 1, 1, 1),
    (1, 1, 3, 7, 7, 224, 224),
    (2, 1, 5, 3, 5, 17, 11),       # odd sizes, non-square, non-integer scale
    (3, 2, 4, 4, 4, 9, 13),        # G > 1
    (2, 1, 2048, 2, 3, 8, 8),      # large K
    (1, 3, 6, 14, 14, 10, 10),     # downsampling
]
FLAGS = [(True, True, False), (False, True, False), (True, False, False), (True, True, True),
         (False, False, True)]


def _inputs(B, G, K, h, w, dtype):
    return torch.randn(B, K, h, w, dtype=dtype), torch.randn(B, G, K, dtype=dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpp_kernel_matches_reference(shape, flags, dtype):
    B, G, K, h, w, H, W = shape
    relu, normalize, ac = flags
    A, wt = _inputs(B, G, K, h, w, dtype)
    out, s, stats = cpp.cam_combine_forward(A, wt, H, W, relu, normalize, ac)
    r_out, r_s, r_stats = reference.cam_combine_forward(A, wt, H, W, relu, normalize, ac)
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(out, r_out, **tol)
    torch.testing.assert_close(s, r_s, **tol)
    torch.testing.assert_close(stats, r_stats, **tol)

    g = torch.randn_like(out)
    gA, gw = cpp.cam_combine_backward(g, out, A, wt, s, stats, relu, normalize, ac)
    r_gA, r_gw = reference.cam_combine_backward(g, out, A, wt, s, stats, relu, normalize, ac)
    scale = max(1.0, r_gA.abs().max().item(), r_gw.abs().max().item())
    gtol = dict(atol=2e-4 * scale, rtol=1e-3) if dtype == torch.float32 else dict(atol=1e-10 * scale, rtol=1e-8)
    torch.testing.assert_close(gA, r_gA, **gtol)
    torch.testing.assert_close(gw, r_gw, **gtol)


@pytest.mark.parametrize("flags", FLAGS)
def test_gradcheck_float64(flags):
    fastcam.set_backend("cpp")
    relu, normalize, ac = flags
    A = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda A, w: fastcam.ops.cam_combine(A, w, (7, 5), relu, normalize, ac), (A, w))


def test_constant_and_zero_maps_are_finite_with_zero_gradient():
    fastcam.set_backend("cpp")
    A = torch.zeros(2, 4, 7, 7, requires_grad=True)          # all-zero activations
    w = torch.randn(2, 4, requires_grad=True)
    out = fastcam.ops.cam_combine(A, w, 32)
    assert torch.equal(out, torch.zeros(2, 32, 32))
    out.sum().backward()
    assert torch.equal(w.grad, torch.zeros_like(w)) and torch.isfinite(A.grad).all()

    A2 = torch.ones(1, 3, 5, 5)                                 # constant map, positive
    out2 = fastcam.ops.cam_combine(A2, torch.ones(1, 3), 20)
    assert torch.equal(out2, torch.zeros(1, 20, 20))
    ref = reference.cam_combine(A2, torch.ones(1, 3), (20, 20))
    assert torch.equal(out2, ref)


def test_negative_only_map_with_relu_is_zero():
    fastcam.set_backend("cpp")
    A = torch.rand(1, 2, 4, 4)
    out = fastcam.ops.cam_combine(A, -torch.ones(1, 2), 8)
    assert torch.equal(out, torch.zeros(1, 8, 8))
    out_norelu = fastcam.ops.cam_combine(A, -torch.ones(1, 2), 8, relu=False)
    assert out_norelu.min() == 0 and out_norelu.max() == 1


@pytest.mark.parametrize("backend", ["cpp", "reference"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_op_dtypes_and_shapes(backend, dtype):
    fastcam.set_backend(backend)
    A = torch.randn(3, 8, 5, 6).to(dtype)
    w = torch.randn(3, 8).to(dtype)
    out = fastcam.ops.cam_combine(A, w, (20, 24))
    assert out.shape == (3, 20, 24) and out.dtype == dtype
    ref = reference.cam_combine(A.double(), w.double(), (20, 24))
    tol = 1e-2 if dtype in (torch.float16, torch.bfloat16) else 1e-5
    # low-precision inputs are computed in float32: only the rounding of A and w differs
    torch.testing.assert_close(out.double(), ref, atol=tol, rtol=tol)
    grouped = fastcam.ops.cam_combine(A, torch.stack([w, -w], 1), 9)
    assert grouped.shape == (3, 2, 9, 9)


def test_op_rejects_bad_input():
    A = torch.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match="4-D"):
        fastcam.ops.cam_combine(A[0], torch.randn(2, 4), 8)
    with pytest.raises(ValueError, match="does not match"):
        fastcam.ops.cam_combine(A, torch.randn(2, 5), 8)
    with pytest.raises(ValueError, match="does not match"):
        fastcam.ops.cam_combine(A, torch.randn(3, 4), 8)
    with pytest.raises(ValueError, match="size"):
        fastcam.ops.cam_combine(A, torch.randn(2, 4), (0, 8))
    with pytest.raises(RuntimeError, match="CUDA tensors only"):
        with fastcam.use_backend("cuda"):
            fastcam.ops.cam_combine(A, torch.randn(2, 4), 8)
    with pytest.raises(ValueError, match="unknown backend"):
        fastcam.set_backend("tpu")


def test_noncontiguous_inputs():
    fastcam.set_backend("cpp")
    A = torch.randn(6, 2, 5, 4).transpose(0, 1)[:, ::2]        # (2,3,5,4) non-contiguous
    w = torch.randn(3, 2).t()
    torch.testing.assert_close(fastcam.ops.cam_combine(A, w, 10),
                               reference.cam_combine(A, w, (10, 10)), atol=1e-6, rtol=1e-5)


def test_opcheck():
    fastcam.set_backend("cpp")
    A = torch.randn(2, 3, 4, 4, requires_grad=True)
    w = torch.randn(2, 1, 3, requires_grad=True)
    from fastcam.ops.cam_combine import _cam_combine_forward
    torch.library.opcheck(_cam_combine_forward, (A, w, 8, 8, True, True, False))


def test_torch_compile_of_a_function_calling_the_op():
    fastcam.set_backend("cpp")

    def f(A, w):
        return fastcam.ops.cam_combine(A * 2, w, (16, 16)).sum(dim=(1, 2))

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    A = torch.randn(2, 4, 4, 4, requires_grad=True)
    w = torch.randn(2, 4, requires_grad=True)
    y = compiled(A, w)
    torch.testing.assert_close(y, f(A, w))
    gA, = torch.autograd.grad(y.sum(), A)
    rA, = torch.autograd.grad(f(A, w).sum(), A)
    torch.testing.assert_close(gA, rA)


@pytest.mark.parametrize("size", [(224, 224), (37, 53), (5, 3)])
def test_cpp_output_spans_exactly_zero_to_one(size):
    # the C++ forward finds min/max from each source cell's end pixels only:
    # the extremes it reports must be those of the whole upsampled map
    A = torch.randn(4, 6, 7, 9)
    w = torch.randn(4, 1, 6)
    for ac in (False, True):
        out, _, stats = cpp.cam_combine_forward(A, w, *size, False, True, ac)
        _, _, r_stats = reference.cam_combine_forward(A, w, *size, False, True, ac)
        torch.testing.assert_close(stats, r_stats, atol=1e-6, rtol=1e-6)
        assert (out.amin(dim=(2, 3)) == 0).all() and (out.amax(dim=(2, 3)) == 1).all()
        assert ((out >= 0) & (out <= 1)).all()


# ----------------------------------------------------------------------------
# Triton, under TRITON_INTERPRET=1
# ----------------------------------------------------------------------------
tk = triton_module("cam_combine")
CASES = (  # (B, G, K, h, w, H, W), dtype, (relu, normalize, align_corners)
    [((2, 3, 4, 3, 5, 17, 11), F32, f) for f in ALL_FLAGS]          # odd sizes, G > 1
    + [((1, 1, 4, 3, 5, 17, 11), F64, f) for f in ALL_FLAGS]        # batch 1, float64
    + [((1, 1, 300, 2, 3, 7, 5), dt, f) for dt in (F32, F64)        # large K, tiny map
       for f in [(True, True, False), (False, False, True)]]
    + [((1, 2, 5, 7, 7, 5, 4), F32, f)                              # downsampling
       for f in [(True, True, False), (False, True, True)]]
    + [((2, 1, 3, 4, 4, 16, 16), F32, f)                            # integer scale 4
       for f in [(True, True, False), (True, True, True)]]
    + [((1, 1, 2, 1, 1, 4, 3), F64, f)                              # 1x1 map: constant
       for f in [(True, True, False), (False, False, True)]]
    + [((1, 1, 3, 1, 6, 1, 9), F64, (False, True, True)),           # single row/col
       ((1, 1, 3, 4, 3, 1, 1), F64, (False, False, False))]         # to a single pixel
)


def _tol(dtype, scale=1.0):
    if dtype == F32:
        return dict(atol=1e-5 * scale, rtol=1e-4)
    return dict(atol=1e-12 * scale, rtol=1e-10)


def _check_forward_backward(A, w, H, W, flags, g=None):
    relu, normalize, ac = flags
    out, s, stats = tk.cam_combine_forward(A, w, H, W, relu, normalize, ac)
    r_out, r_s, r_stats = reference.cam_combine_forward(A, w, H, W, relu, normalize, ac)
    assert out.shape == r_out.shape and s.shape == r_s.shape and stats.shape == r_stats.shape
    assert out.dtype == s.dtype == stats.dtype == A.dtype
    torch.testing.assert_close(out, r_out, **_tol(A.dtype))
    torch.testing.assert_close(s, r_s, **_tol(A.dtype))
    torch.testing.assert_close(stats, r_stats, **_tol(A.dtype))

    g = torch.randn_like(out) if g is None else g
    gA, gw = tk.cam_combine_backward(g, out, A, w, s, stats, relu, normalize, ac)
    r_gA, r_gw = reference.cam_combine_backward(g, out, A, w, s, stats, relu, normalize, ac)
    assert gA.dtype == gw.dtype == A.dtype
    scale = max(1.0, r_gA.abs().max().item(), r_gw.abs().max().item())
    torch.testing.assert_close(gA, r_gA, **_tol(A.dtype, scale))
    torch.testing.assert_close(gw, r_gw, **_tol(A.dtype, scale))
    return out, stats, gA, gw


@triton_interp
@pytest.mark.parametrize("shape,dtype,flags", CASES,
                         ids=[f"{'x'.join(map(str, s))}-{str(d)[6:]}-r{int(f[0])}n{int(f[1])}a{int(f[2])}"
                              for s, d, f in CASES])
def test_triton_kernels_match_reference(shape, dtype, flags):
    B, G, K, h, w, H, W = shape
    A = torch.randn(B, K, h, w, dtype=dtype)
    wt = torch.randn(B, G, K, dtype=dtype)
    _check_forward_backward(A, wt, H, W, flags)


@triton_interp
@pytest.mark.parametrize("ac", [False, True])
@pytest.mark.parametrize("sizes", [((7, 64), (1, 5)), ((13, 5), (6, 12)), ((3, 40), (9, 2)),
                                   ((2, 9), (5, 1))])
def test_triton_upsampling_adjoint_windows(sizes, ac):
    # The backward gathers, for each low-res cell, from a window of output rows and
    # columns (_window_start, _window); float64 at 1e-12 catches any missed tap.
    (h, H), (w, W) = sizes
    A = torch.randn(1, 1, h, w, dtype=F64)
    _check_forward_backward(A, torch.ones(1, 1, 1, dtype=F64), H, W, (False, False, ac))


@triton_interp
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("what", ["zero_weights", "zero_activations"])
def test_triton_constant_maps_give_zeros_and_zero_gradient(what, relu, dtype):
    A = torch.randn(2, 5, 3, 4, dtype=dtype)
    wt = torch.randn(2, 2, 5, dtype=dtype)
    if what == "zero_weights":
        wt.zero_()
    else:
        A.zero_()
    out, stats, gA, gw = _check_forward_backward(A, wt, 9, 7, (relu, True, False))
    assert torch.isfinite(out).all() and (out == 0).all()
    assert (stats == 0).all()
    assert (gA == 0).all() and (gw == 0).all()


@triton_interp
def test_triton_relu_kills_everything():
    A = torch.rand(1, 3, 4, 4) + 0.1
    wt = -torch.rand(1, 1, 3) - 0.1                    # s < 0 everywhere
    out, stats, gA, gw = _check_forward_backward(A, wt, 8, 8, (True, True, True))
    assert (out == 0).all() and (gA == 0).all() and (gw == 0).all()


@triton_interp
@pytest.mark.parametrize("ac", [False, True])
def test_triton_min_max_ties_share_the_gradient(ac):
    # A plateau at the maximum and one at the minimum: amin/amax split their
    # gradient evenly over every tied element, and so must the kernels.
    A = torch.tensor([[2.0, 2.0, 0.5], [2.0, 2.0, -1.0], [0.3, -1.0, -1.0]],
                     dtype=F64).reshape(1, 1, 3, 3)
    wt = torch.ones(1, 1, 1, dtype=F64)
    out, _, _, _ = _check_forward_backward(A, wt, 7, 8, (False, True, ac))
    assert (out == 1).sum() > 1 and (out == 0).sum() > 1


@triton_interp
def test_triton_half_precision_inputs():
    A = torch.randn(1, 4, 3, 5).half()
    wt = torch.randn(1, 2, 4).half()
    out, s, stats = tk.cam_combine_forward(A, wt, 9, 8, True, True, False)
    r_out, r_s, _ = reference.cam_combine_forward(A.float(), wt.float(), 9, 8, True, True, False)
    assert out.dtype == torch.float16
    torch.testing.assert_close(s.float(), r_s, atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(out.float(), r_out, atol=2e-2, rtol=1e-2)
    gA, gw = tk.cam_combine_backward(torch.ones_like(out), out, A, wt, s, stats, True, True, False)
    assert gA.dtype == gw.dtype == torch.float16 and torch.isfinite(gA).all()


@triton_interp
@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("flags", [(True, True, False), (False, True, True), (True, False, False)])
def test_triton_op(grouped, flags):
    relu, normalize, ac = flags
    fastcam.set_backend("triton")
    A = torch.randn(2, 6, 4, 5, requires_grad=True)
    w = torch.randn(*((2, 3, 6) if grouped else (2, 6)), requires_grad=True)
    out = fastcam.ops.cam_combine(A, w, (11, 13), relu, normalize, ac)
    g = torch.randn_like(out)
    gA, gw = torch.autograd.grad(out, (A, w), g)

    A_ = A.detach().requires_grad_(True)
    w_ = w.detach().requires_grad_(True)
    r_out = reference.cam_combine(A_, w_, (11, 13), relu, normalize, ac)
    r_gA, r_gw = torch.autograd.grad(r_out, (A_, w_), g)
    assert out.shape == r_out.shape
    torch.testing.assert_close(out, r_out, atol=1e-5, rtol=1e-4)
    scale = max(1.0, r_gA.abs().max().item(), r_gw.abs().max().item())
    torch.testing.assert_close(gA, r_gA, atol=1e-5 * scale, rtol=1e-4)
    torch.testing.assert_close(gw, r_gw, atol=1e-5 * scale, rtol=1e-4)


@triton_interp
def test_triton_op_float64_gradcheck():
    fastcam.set_backend("triton")
    A = torch.randn(1, 2, 2, 3, dtype=F64, requires_grad=True)
    w = torch.randn(1, 1, 2, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda A, w: fastcam.ops.cam_combine(A, w, (4, 3), True, True, False), (A, w))


# Every kernel compiled for sm_80 and sm_90 (tests/_triton_aot.py), in float32,
# float64 and bfloat16 data (buffers of the compute dtype: t, shares, gs), with
# the RELU/NORMALIZE/ALIGN flags on and off.
_TUNERS = {"_weighted_sum_kernel": "_weighted_sum", "_upsample_minmax_kernel": "_upsample_minmax",
           "_minmax_shares_kernel": "_minmax_shares",
           "_upsample_adjoint_cols_kernel": "_adjoint_cols",
           "_upsample_adjoint_rows_kernel": "_adjoint_rows"}
_MODULE = "fastcam.kernels.triton.cam_combine"


@pytest.fixture(scope="module")
def aot_results(tmp_path_factory):
    jobs = [dict(module=_MODULE, kernel=fn, tuner=tuner, cc=cc, dtype=data, flag=flag,
                 constexprs=dict(F64=data == "fp64", RELU=flag, NORMALIZE=flag, ALIGN=flag),
                 types={n: "*" + acc for n in ("t_ptr", "shares_ptr", "gs_ptr")})
            for cc in (80, 90) for fn, tuner in _TUNERS.items()
            for data, acc, flag in [("fp32", "fp32", True), ("fp32", "fp32", False),
                                    ("fp64", "fp64", True), ("bf16", "fp32", True)]]
    # and for sm_90 with each size argument equal to 1, as the JIT specialises it
    jobs += size_one_jobs([j for j in jobs if j["cc"] == 90 and j["dtype"] == "fp32"])
    return compile_for_gpu(jobs, {_MODULE: _TUNERS}, tmp_path_factory)


@triton_interp
@pytest.mark.parametrize("cc", [80, 90])
def test_triton_kernels_compile_for_gpu(cc, aot_results):
    assert_compiled(aot_results, cc, tk, variants=4)


@triton_interp
def test_triton_float32_divisions_are_ieee_rounded(aot_results):
    # Triton's float32 "/" is div.full.f32 (2 ulp) on NVIDIA GPUs: every kernel
    # divides through div_rn (div.rn.f32), forward and backward, so that y == 1
    # finds the maximum and the gradient shares are correctly rounded.
    fp32 = [r for r in aot_results if r["dtype"] == "fp32" and not r.get("size_one")]
    assert fp32
    for r in fp32:
        assert "div.full.f32" not in r["ptx"] and "div.approx" not in r["ptx"], r["kernel"]
    for kernel in ("_minmax_shares_kernel", "_upsample_adjoint_cols_kernel",
                   "_upsample_minmax_kernel"):
        assert all("div.rn.f32" in r["ptx"] for r in fp32 if r["kernel"] == kernel), kernel


@triton_interp
def test_triton_kernels_compile_with_size_one_arguments(aot_results):
    # h, w, H or W equal to 1 (1x1 and 1-row maps, a single output pixel) reach
    # the kernels as constexprs: Python ints, not tensors.
    assert_size_one_compiled(aot_results, 90, tk)
    ones = {o for r in aot_results if r["kernel"] == "_upsample_minmax_kernel"
            for o in r["ones"]}
    assert {"h", "w", "H", "W"} <= ones


# ----------------------------------------------------------------------------
# CUDA, on a GPU
# ----------------------------------------------------------------------------
# (B, G, K, h, w, H, W): ResNet-like 7x7 -> 224, odd sizes, G > 1, low-res
# sizes of 1 and 2, downsampling, identity, a low-res map too big for shared
# memory (float64), and a single output pixel.
CUDA_SHAPES = [
    (2, 1, 64, 7, 7, 224, 224),
    (3, 4, 6, 5, 6, 17, 13),
    (1, 2, 3, 2, 2, 8, 8),
    (1, 3, 5, 1, 4, 6, 9),
    (2, 2, 4, 9, 7, 5, 4),
    (1, 1, 3, 4, 4, 4, 4),
    (1, 1, 3, 90, 80, 23, 31),
    (2, 3, 4, 6, 5, 1, 1),
]
CUDA_FLAGS = ALL_FLAGS  # every (relu, normalize, align_corners)


def _cuda_inputs(shape, dtype, device="cuda"):
    B, G, K, h, w, H, W = shape
    A = torch.randn(B, K, h, w, dtype=dtype, device=device)
    wt = torch.randn(B, G, K, dtype=dtype, device=device)
    go = torch.randn(B, G, H, W, dtype=dtype, device=device)
    return A, wt, go


@needs_gpu
@pytest.mark.parametrize("shape", CUDA_SHAPES)
@pytest.mark.parametrize("relu,normalize,align_corners", CUDA_FLAGS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_matches_reference(shape, relu, normalize, align_corners, dtype):
    from fastcam.kernels import cuda as kcuda

    B, G, K, h, w, H, W = shape
    A, wt, go = _cuda_inputs(shape, dtype)
    out, s, stats = kcuda.cam_combine_forward(A, wt, H, W, relu, normalize, align_corners)
    torch.cuda.synchronize()
    # The reference in float64 from the same inputs.
    r_out, r_s, r_stats = reference.cam_combine_forward(A.double(), wt.double(), H, W, relu,
                                                           normalize, align_corners)
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s.double(), r_s, **tol)
    torch.testing.assert_close(stats.double(), r_stats, **tol)
    torch.testing.assert_close(out.double(), r_out, **tol)
    if normalize:  # the maximum of every non-constant map is exactly 1
        assert ((out == 1).flatten(2).any(-1) | (stats[..., 1] == 0)).all()

    gA, gw = kcuda.cam_combine_backward(go, out, A, wt, s, stats, relu, normalize,
                                        align_corners)
    torch.cuda.synchronize()
    r_gA, r_gw = reference.cam_combine_backward(go.double(), out.double(), A.double(),
                                                wt.double(), s.double(), stats.double(), relu,
                                                normalize, align_corners)
    g_tol = tol if dtype == torch.float64 else dict(rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(gA.double(), r_gA, **g_tol)
    torch.testing.assert_close(gw.double(), r_gw, **g_tol)


@needs_gpu
def test_cuda_matches_cpu_kernels():
    from fastcam.kernels import cpp as kcpu
    from fastcam.kernels import cuda as kcuda

    A, wt, go = _cuda_inputs((3, 2, 32, 7, 7, 64, 48), torch.float64)
    flags = (True, True, False)
    o, s, st = kcuda.cam_combine_forward(A, wt, 64, 48, *flags)
    gA, gw = kcuda.cam_combine_backward(go, o, A, wt, s, st, *flags)
    Ac, wc, gc = A.cpu(), wt.cpu(), go.cpu()
    oc, sc, stc = kcpu.cam_combine_forward(Ac, wc, 64, 48, *flags)
    gAc, gwc = kcpu.cam_combine_backward(gc, oc, Ac, wc, sc, stc, *flags)
    for x, y in [(o, oc), (s, sc), (st, stc), (gA, gAc), (gw, gwc)]:
        torch.testing.assert_close(x.cpu(), y, rtol=1e-10, atol=1e-12)


@needs_gpu
def test_cuda_constant_map_is_zero_with_zero_gradient():
    from fastcam.kernels import cuda as kcuda

    A = torch.ones(2, 3, 4, 4, dtype=torch.float64, device="cuda")
    wt = torch.ones(2, 1, 3, dtype=torch.float64, device="cuda")
    out, s, st = kcuda.cam_combine_forward(A, wt, 9, 9, True, True, False)
    assert (out == 0).all() and (st[..., 1] == 0).all()
    gA, gw = kcuda.cam_combine_backward(torch.randn_like(out), out, A, wt, s, st, True, True,
                                        False)
    assert (gA == 0).all() and (gw == 0).all()


@needs_gpu
def test_cuda_backend_through_op_on_side_stream():
    import fastcam
    from fastcam.ops.cam_combine import cam_combine

    A, wt, _ = _cuda_inputs((2, 3, 16, 7, 7, 33, 29), torch.float32)
    A.requires_grad_(True)
    wt.requires_grad_(True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with fastcam.use_backend("cuda"), torch.cuda.stream(side):
        out = cam_combine(A, wt, (33, 29))
        out.square().sum().backward()
    torch.cuda.synchronize()
    A_ = A.detach().double().requires_grad_(True)
    w_ = wt.detach().double().requires_grad_(True)
    r = reference.cam_combine(A_, w_, (33, 29))
    r.square().sum().backward()
    torch.testing.assert_close(out.double(), r, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(A.grad.double(), A_.grad, rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(wt.grad.double(), w_.grad, rtol=2e-3, atol=2e-3)
