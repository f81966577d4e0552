"""cam_combine's Triton kernels (fastcam/kernels/triton/cam_combine.py).

(a) Under TRITON_INTERPRET=1 (set by conftest.py before any import) the kernels run
    on CPU tensors; forward (out, s_low, stats) and backward (grad_A, grad_w) are
    compared with the eager definition, fastcam/kernels/reference.py, directly and
    through fastcam.ops.cam_combine with backend "triton".
(b) Every kernel is compiled ahead of time for sm_80 and sm_90 (no GPU needed):
    triton.compile(ASTSource(...), target=GPUTarget("cuda", cc, 32)) must give PTX
    (and a cubin, through ptxas).
"""
import os

import pytest
import torch

import fastcam
from _triton_aot import run_aot_script
from fastcam.kernels import reference

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                reason="needs TRITON_INTERPRET=1 before import (conftest.py)")
triton = pytest.importorskip("triton")
from fastcam.kernels.triton import cam_combine as tk  # noqa: E402

F32, F64 = torch.float32, torch.float64
ALL_FLAGS = [(r, n, a) for r in (True, False) for n in (True, False) for a in (False, True)]

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
    r_out, r_s, r_stats = reference.cam_combine_with_stats(A, w, (H, W), relu, normalize, ac)
    assert out.shape == r_out.shape and s.shape == r_s.shape and stats.shape == r_stats.shape
    assert out.dtype == s.dtype == stats.dtype == A.dtype
    torch.testing.assert_close(out, r_out, **_tol(A.dtype))
    torch.testing.assert_close(s, r_s, **_tol(A.dtype))
    torch.testing.assert_close(stats, r_stats, **_tol(A.dtype))

    g = torch.randn_like(out) if g is None else g
    gA, gw = tk.cam_combine_backward(g, out, A, w, s, stats, relu, normalize, ac)
    r_gA, r_gw = reference.cam_combine_backward(g, A, w, (H, W), relu, normalize, ac)
    assert gA.dtype == gw.dtype == A.dtype
    scale = max(1.0, r_gA.abs().max().item(), r_gw.abs().max().item())
    torch.testing.assert_close(gA, r_gA, **_tol(A.dtype, scale))
    torch.testing.assert_close(gw, r_gw, **_tol(A.dtype, scale))
    return out, stats, gA, gw


@pytest.mark.parametrize("shape,dtype,flags", CASES,
                         ids=[f"{'x'.join(map(str, s))}-{str(d)[6:]}-r{int(f[0])}n{int(f[1])}a{int(f[2])}"
                              for s, d, f in CASES])
def test_kernels_match_reference(shape, dtype, flags):
    B, G, K, h, w, H, W = shape
    A = torch.randn(B, K, h, w, dtype=dtype)
    wt = torch.randn(B, G, K, dtype=dtype)
    _check_forward_backward(A, wt, H, W, flags)


@pytest.mark.parametrize("ac", [False, True])
@pytest.mark.parametrize("sizes", [((7, 64), (1, 5)), ((13, 5), (6, 12)), ((3, 40), (9, 2)),
                                   ((2, 9), (5, 1))])
def test_upsampling_adjoint_windows(sizes, ac):
    # The backward gathers, for each low-res cell, from a window of output rows and
    # columns (_window_start, _window); float64 at 1e-12 catches any missed tap.
    (h, H), (w, W) = sizes
    A = torch.randn(1, 1, h, w, dtype=F64)
    _check_forward_backward(A, torch.ones(1, 1, 1, dtype=F64), H, W, (False, False, ac))


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("what", ["zero_weights", "zero_activations"])
def test_constant_maps_give_zeros_and_zero_gradient(what, relu, dtype):
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


def test_relu_kills_everything():
    A = torch.rand(1, 3, 4, 4) + 0.1
    wt = -torch.rand(1, 1, 3) - 0.1                    # s < 0 everywhere
    out, stats, gA, gw = _check_forward_backward(A, wt, 8, 8, (True, True, True))
    assert (out == 0).all() and (gA == 0).all() and (gw == 0).all()


@pytest.mark.parametrize("ac", [False, True])
def test_min_max_ties_share_the_gradient(ac):
    # A plateau at the maximum and one at the minimum: amin/amax split their
    # gradient evenly over every tied element, and so must the kernels.
    A = torch.tensor([[2.0, 2.0, 0.5], [2.0, 2.0, -1.0], [0.3, -1.0, -1.0]],
                     dtype=F64).reshape(1, 1, 3, 3)
    wt = torch.ones(1, 1, 1, dtype=F64)
    out, _, _, _ = _check_forward_backward(A, wt, 7, 8, (False, True, ac))
    assert (out == 1).sum() > 1 and (out == 0).sum() > 1


def test_half_precision_inputs():
    A = torch.randn(1, 4, 3, 5).half()
    wt = torch.randn(1, 2, 4).half()
    out, s, stats = tk.cam_combine_forward(A, wt, 9, 8, True, True, False)
    r_out, r_s, _ = reference.cam_combine_with_stats(A.float(), wt.float(), (9, 8), True, True, False)
    assert out.dtype == torch.float16
    torch.testing.assert_close(s.float(), r_s, atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(out.float(), r_out, atol=2e-2, rtol=1e-2)
    gA, gw = tk.cam_combine_backward(torch.ones_like(out), out, A, wt, s, stats, True, True, False)
    assert gA.dtype == gw.dtype == torch.float16 and torch.isfinite(gA).all()


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("flags", [(True, True, False), (False, True, True), (True, False, False)])
def test_op_with_triton_backend(grouped, flags):
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


def test_op_float64_gradcheck():
    fastcam.set_backend("triton")
    A = torch.randn(1, 2, 2, 3, dtype=F64, requires_grad=True)
    w = torch.randn(1, 1, 2, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda A, w: fastcam.ops.cam_combine(A, w, (4, 3), True, True, False), (A, w))


# ----------------------------------------------------------------------------
# (b) Ahead-of-time compilation for real GPUs
# Compiled for sm_80 and sm_90 in a subprocess (see tests/_triton_aot.py).
_AOT_SCRIPT = r"""
tuners = {mod._weighted_sum_kernel: mod._weighted_sum,
          mod._upsample_minmax_kernel: mod._upsample_minmax,
          mod._minmax_shares_kernel: mod._minmax_shares,
          mod._upsample_adjoint_cols_kernel: mod._adjoint_cols,
          mod._upsample_adjoint_rows_kernel: mod._adjoint_rows}
assert set(tuners) == set(mod.KERNELS), "KERNELS and the autotuned launchers disagree"
ACC_PTRS = ("t_ptr", "shares_ptr", "gs_ptr")  # buffers in the compute dtype
results = []
for cc in ccs:
    target = GPUTarget("cuda", cc, 32)
    for fn, tuner in tuners.items():
        cfg = tuner.configs[-1]
        for data, acc, flag in [("fp32", "fp32", True), ("fp32", "fp32", False),
                                ("fp64", "fp64", True), ("bf16", "fp32", True)]:
            constexprs = dict(cfg.kwargs, F64=data == "fp64")
            for name in ("RELU", "NORMALIZE", "ALIGN"):
                if name in fn.arg_names:
                    constexprs[name] = flag
            sig = {n: "constexpr" if n in constexprs else
                      ("*" + (acc if n in ACC_PTRS else data)) if n.endswith("_ptr") else "i32"
                   for n in fn.arg_names}
            attrs = {(i,): [["tt.divisibility", 16]]
                     for i, n in enumerate(fn.arg_names) if n.endswith("_ptr")}
            k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs),
                               target=target, options={"num_warps": cfg.num_warps})
            results.append(dict(cc=cc, kernel=fn.__name__, dtype=data, flag=flag,
                                n_configs=len(tuner.configs), ptx=k.asm["ptx"],
                                cubin=len(k.asm.get("cubin", b"")) if "cubin" in k.asm else None))
print("RESULTS " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def aot_results(tmp_path_factory):
    return run_aot_script(_AOT_SCRIPT, "fastcam.kernels.triton.cam_combine", tmp_path_factory)


@pytest.mark.parametrize("cc", [80, 90])
def test_kernels_compile_for_gpu(cc, aot_results):
    res = [r for r in aot_results if r["cc"] == cc]
    assert {r["kernel"] for r in res} == {fn.__name__ for fn in tk.KERNELS}
    assert len(res) == 4 * len(tk.KERNELS)
    for r in res:
        what = f"{r['kernel']} {r['dtype']} flags={r['flag']} sm_{cc}"
        assert r["n_configs"] > 1, what  # several autotuning configs on GPU
        assert f".entry {r['kernel']}" in r["ptx"], what
        assert f".target sm_{cc}" in r["ptx"], what
        assert r["cubin"] is None or r["cubin"] > 0, what
