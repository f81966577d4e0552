"""cam_combine: the C++/OpenMP kernel and the registered op against the eager
reference (fastcam/kernels/reference.py), forward and backward."""
import pytest
import torch

import fastcam
from fastcam.kernels import cpu, reference

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
def test_cpu_kernel_matches_reference(shape, flags, dtype):
    B, G, K, h, w, H, W = shape
    relu, normalize, ac = flags
    A, wt = _inputs(B, G, K, h, w, dtype)
    out, s, stats = cpu.cam_combine_forward(A, wt, H, W, relu, normalize, ac)
    r_out, r_s, r_stats = reference.cam_combine_with_stats(A, wt, (H, W), relu, normalize, ac)
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(out, r_out, **tol)
    torch.testing.assert_close(s, r_s, **tol)
    torch.testing.assert_close(stats, r_stats, **tol)

    g = torch.randn_like(out)
    gA, gw = cpu.cam_combine_backward(g, out, A, wt, s, stats, relu, normalize, ac)
    r_gA, r_gw = reference.cam_combine_backward(g, A, wt, (H, W), relu, normalize, ac)
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
    from fastcam.ops.cam_combine import _cam_combine_fwd
    torch.library.opcheck(_cam_combine_fwd, (A, w, 8, 8, True, True, False))


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
def test_cpu_output_spans_exactly_zero_to_one(size):
    # the C++ forward finds min/max from each source cell's end pixels only:
    # the extremes it reports must be those of the whole upsampled map
    A = torch.randn(4, 6, 7, 9)
    w = torch.randn(4, 1, 6)
    for ac in (False, True):
        out, _, stats = cpu.cam_combine_forward(A, w, *size, False, True, ac)
        _, _, r_stats = reference.cam_combine_with_stats(A, w, size, False, True, ac)
        torch.testing.assert_close(stats, r_stats, atol=1e-6, rtol=1e-6)
        assert (out.amin(dim=(2, 3)) == 0).all() and (out.amax(dim=(2, 3)) == 1).all()
        assert ((out >= 0) & (out <= 1)).all()
