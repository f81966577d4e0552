"""rank_reveal: every backend against the eager reference (fastcam/kernels/reference.py).

- The parity harness: the op through every compiled backend (cpp; triton under
  TRITON_INTERPRET=1; cuda, skipped without a GPU) x dtype x layout
  (contiguous, non-contiguous, channels_last) x shape (odd sizes, one channel,
  a 1x1 and a 1-row image, batch 1 with many copies) x which of src/dst is given.
- The op's checks, made once for every backend, and the one dtype it hands
  every kernel.
- C++/OpenMP: the kernel directly (1/std), and the op.
- Triton (fastcam/kernels/triton/rank_reveal.py): the kernel directly under
  TRITON_INTERPRET=1 (set by conftest.py before any import) and through the op,
  and compiled ahead of time for sm_80 and sm_90 (tests/_triton_aot.py).
- CUDA: the kernel against the reference and the C++ kernel, on a GPU only.
"""
import importlib

import pytest
import torch

import fastcam
from _parity import (BACKENDS, F32, F64, LAYOUTS, assert_kernel_inputs, device_of,
                     imagenet_like_norm, moved, needs_gpu, random_norm, spy, tol, triton_interp,
                     triton_module)
from _triton_aot import assert_compiled, assert_size_one_compiled, compile_for_gpu, size_one_jobs
from fastcam.kernels import cpp, reference
from fastcam.ops import rank_reveal


# ----------------------------------------------------------------------------
# The parity harness: every backend x dtype x layout x shape
# ----------------------------------------------------------------------------
PARITY_CASES = {  # name: (B, C, H, W, n), which of src/dst, normalise
    "odd": ((2, 3, 9, 7, 6), "both", True),
    "channel1": ((1, 1, 17, 13, 4), "src", False),
    "pixel": ((1, 1, 1, 1, 3), "dst", True),                    # a 1x1 image
    "row": ((2, 2, 1, 40, 5), "both", False),                   # a 1-row image
    "many": ((1, 3, 8, 8, 40), "src", True),                    # batch 1, many copies
}
def _parity_tol(backend, dtype):
    if dtype == F64:
        return dict(atol=1e-12, rtol=1e-12)
    return dict(atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("case", list(PARITY_CASES))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_parity(backend, dtype, layout, case):
    (B, C, H, W, n), which, nm = PARITY_CASES[case]
    fastcam.set_backend(backend)
    dev = device_of(backend)
    HW = H * W
    rank = torch.stack([torch.randperm(HW) for _ in range(B)])
    counts = torch.tensor([0, 1, HW // 2, HW, HW + 5, -1] * (n // 6 + 1))[:n]
    index = torch.randint(0, B, (n,))
    src = torch.randn(B, C, H, W, dtype=dtype) if which != "dst" else None
    dst = torch.randn(B, C, H, W, dtype=dtype) if which != "src" else None
    mean, std = (torch.rand(C, dtype=dtype), torch.rand(C, dtype=dtype) + 0.2) if nm else (None, None)
    args = moved((rank, counts, index, src, dst, mean, std), dev, layout)
    out = rank_reveal(*args[:5], mean=args[5], std=args[6])
    ref = reference.rank_reveal(rank, counts, index, src, dst, mean, std)
    assert out.shape == ref.shape and out.dtype == dtype and out.device.type == dev
    torch.testing.assert_close(out.cpu(), ref, **_parity_tol(backend, dtype))
    if not nm:  # pure selection: bit-exact
        assert torch.equal(out.cpu(), ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_op_checks(backend):
    # One check per condition, at the op, for every backend: the kernels assume
    # valid input.
    fastcam.set_backend(backend)
    src = torch.randn(1, 3, 4, 5, device=device_of(backend))
    rank = torch.randperm(20, device=src.device)[None]
    counts, index = torch.tensor([3, 11]), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="both be None"):
        rank_reveal(rank, counts, index, None, None)
    with pytest.raises(ValueError, match="one value per channel"):
        rank_reveal(rank, counts, index, src, None, mean=src.new_zeros(1), std=src.new_ones(3))
    with pytest.raises(ValueError, match="differ"):
        rank_reveal(rank, counts, index, src, src[:, :2])
    empty = rank_reveal(rank, counts[:0], index[:0], src, None)
    assert empty.shape == (0, 3, 4, 5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_op_hands_the_kernel_one_dtype(monkeypatch, backend):
    # Mixed and half-precision inputs reach the kernel as contiguous tensors of one
    # dtype, float32 or float64, on the images' device; integer tensors as int64.
    calls = spy(monkeypatch, backend, "rank_reveal")
    fastcam.set_backend(backend)
    dev = device_of(backend)
    src = torch.randn(1, 3, 4, 5, device=dev)
    rank = torch.randperm(20, dtype=torch.int32)[None]
    counts, index = torch.tensor([3, 11], dtype=torch.int16), torch.zeros(2, dtype=torch.int32)
    for s, d, want in [(src, src.double(), F32), (src.double(), src, F64), (src.half(), None, F32)]:
        out = rank_reveal(rank, counts, index, s, d, mean=torch.zeros(3), std=torch.ones(3, dtype=F64))
        args = calls.pop()
        assert_kernel_inputs(args, src.device, want)
        assert all(t.dtype == torch.long for t in args[:3])
        assert out.dtype == want
        c = lambda t: None if t is None else t.to(want).cpu()  # noqa: E731
        torch.testing.assert_close(out.cpu(), reference.rank_reveal(rank.long(), counts.long(),
                                                                    index.long(), c(s), c(d)))


def test_op_cuda_backend_rejects_cpu_tensors():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(RuntimeError, match="CUDA tensors only"):
        with fastcam.use_backend("cuda"):
            rank_reveal(torch.zeros(2, 64, dtype=torch.long), torch.tensor([1]), torch.tensor([0]),
                        x, None)


# ----------------------------------------------------------------------------
# C++/OpenMP and the op
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("src_dst", ["x,None", "None,x", "x,base"])
@pytest.mark.parametrize("with_norm", [False, True])
def test_cpp_kernel_matches_reference(dtype, src_dst, with_norm):
    B, C, H, W = 2, 3, 9, 7
    x = torch.rand(B, C, H, W, dtype=dtype)
    base = torch.rand(B, C, H, W, dtype=dtype)
    src, dst = {"x,None": (x, None), "None,x": (None, x), "x,base": (x, base)}[src_dst]
    rank = torch.stack([torch.randperm(H * W) for _ in range(B)])
    counts = torch.tensor([0, 1, 30, H * W, H * W + 5, 17])
    index = torch.tensor([0, 1, 1, 0, 1, 0])
    mean, std = (t.to(dtype) for t in imagenet_like_norm()) if with_norm else (None, None)
    got = cpp.rank_reveal(rank, counts, index, src, dst, mean, None if std is None else 1 / std)
    ref = reference.rank_reveal(rank, counts, index, src, dst, mean, std)
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-6)


def test_rank_reveal_reveals_the_first_pixels():
    x = torch.arange(1.0, 7.0).view(1, 1, 2, 3)
    rank = torch.tensor([[5, 4, 3, 2, 1, 0]])             # reveal order: last pixel first
    out = rank_reveal(rank, torch.tensor([2]), torch.tensor([0]), x, None)
    assert out.flatten().tolist() == [0, 0, 0, 0, 5, 6]


def test_op_errors():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="rank must be"):
        rank_reveal(torch.zeros(2, 10, dtype=torch.long), torch.tensor([1]), torch.tensor([0]), x, None)
    with pytest.raises(ValueError, match="both be None"):
        rank_reveal(torch.zeros(2, 64, dtype=torch.long), torch.tensor([1]), torch.tensor([0]), None, None)


def test_index_out_of_range():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"index must lie in \[0, 2\), got -1"):
        rank_reveal(torch.zeros(2, 64, dtype=torch.long), torch.tensor([1]), torch.tensor([-1]), x, None)


def test_reveal_scores_checks_the_index_once_not_per_chunk(monkeypatch):
    import fastcam.ops._inputs as inputs
    op_rr = importlib.import_module("fastcam.ops.rank_reveal")
    ms = importlib.import_module("fastcam.perturbation.masked_scores")
    from fastcam.perturbation.masked_scores import class_score, reveal_scores

    calls = []

    def counted(index, size, name="index"):
        calls.append(index.numel())
        return inputs.check_index(index, size, name)

    monkeypatch.setattr(op_rr, "_check_index", counted)
    monkeypatch.setattr(ms, "check_index", counted)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 4))
    x = torch.rand(2, 3, 4, 4)
    rank = torch.stack([torch.randperm(16), torch.randperm(16)])
    counts, index = torch.arange(9).repeat(2), torch.arange(2).repeat_interleave(9)
    scores = reveal_scores(model, rank, counts, index, x, None, class_score(torch.tensor([0, 2])),
                           chunk_size=4)
    assert calls == [18]                                  # one check of all 18, 5 chunks
    expected = model(rank_reveal(rank, counts, index, x, None))[torch.arange(18), index * 2]
    torch.testing.assert_close(scores, expected)
    with pytest.raises(ValueError, match=r"index must lie in \[0, 2\), got 2"):
        reveal_scores(model, rank, counts, index + 1, x, None, class_score(torch.tensor([0, 2])),
                      chunk_size=4)


def test_shapcam_coalitions_skip_the_index_check(monkeypatch):
    # Shap-CAM's coalition rows are arange(m) by construction: no check, no sync.
    op_rr = importlib.import_module("fastcam.ops.rank_reveal")
    from fastcam.perturbation.coalition_scores import general_worths

    def fail(*a, **k):
        raise AssertionError("index checked")

    monkeypatch.setattr(op_rr, "_check_index", fail)
    tail = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 2 * 2, 3))
    A = torch.rand(1, 2, 2, 2)
    perms = torch.stack([torch.randperm(4) for _ in range(3)])
    worths = general_worths(tail, A, torch.zeros(2), perms, lambda logits, i: logits[:, 1], 5)
    assert worths.shape == (3, 5)
    torch.testing.assert_close(worths[:, -1], tail(A)[:, 1].expand(3))   # all players in
    torch.testing.assert_close(worths[:, 0], tail(torch.zeros_like(A))[:, 1].expand(3))


# ----------------------------------------------------------------------------
# Triton, under TRITON_INTERPRET=1
# ----------------------------------------------------------------------------
tk = triton_module("rank_reveal")


RR_SHAPES = {  # name: (B, C, H, W, index)
    "b1c1": (1, 1, 17, 13, [0, 0, 0, 0]),
    "b2c3": (2, 3, 17, 13, [1, 0, 1, 0, 1]),
    "big": (2, 2, 37, 31, [0, 1, 1]),  # H*W = 1147: two pixel blocks
}
RR_CASES = [(s, dt, which, nm) for s in RR_SHAPES for dt in (F32, F64)
            for which in ("both", "src", "dst") for nm in (True, False)]


@triton_interp
@pytest.mark.parametrize("shape,dtype,which,nm", RR_CASES,
                         ids=[f"{s}-{str(d)[6:]}-{w}-nm{int(n)}" for s, d, w, n in RR_CASES])
def test_triton_kernel_matches_reference(shape, dtype, which, nm):
    B, C, H, W, index = RR_SHAPES[shape]
    HW = H * W
    rank = torch.stack([torch.randperm(HW) for _ in range(B)])
    counts = torch.tensor([0, HW, 7, HW // 2, HW - 1][:len(index)])
    src = torch.randn(B, C, H, W, dtype=dtype) if which != "dst" else None
    dst = torch.randn(B, C, H, W, dtype=dtype) if which != "src" else None
    mean, std = random_norm(C, dtype, nm)
    index = torch.tensor(index)
    out = tk.rank_reveal(rank, counts, index, src, dst, mean, None if std is None else 1.0 / std)
    ref = reference.rank_reveal(rank, counts, index, src, dst, mean, std)
    assert out.shape == ref.shape and out.dtype == dtype
    torch.testing.assert_close(out, ref, **tol(dtype))
    if not nm:  # pure selection: bit-exact
        assert torch.equal(out, ref)
        if which == "both":
            assert torch.equal(out[0], dst[index[0]])     # counts 0: nothing revealed
            assert torch.equal(out[1], src[index[1]])     # counts H*W: everything


@triton_interp
def test_triton_partial_normalisation_and_empty():
    src = torch.randn(1, 3, 4, 5)
    rank = torch.randperm(20)[None]
    counts, index = torch.tensor([3, 11]), torch.zeros(2, dtype=torch.long)
    mean = torch.randn(3)
    ref = reference.rank_reveal(rank, counts, index, src, None)
    got = tk.rank_reveal(rank, counts, index, src, None, mean, None)
    torch.testing.assert_close(got, ref - mean.view(1, -1, 1, 1))
    empty = tk.rank_reveal(rank, counts[:0], index[:0], src, None, None, None)
    assert empty.shape == (0, 3, 4, 5)


@triton_interp
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("which,nm", [("both", True), ("src", False), ("dst", True)])
def test_triton_op(monkeypatch, dtype, which, nm):
    calls = spy(monkeypatch, "triton", "rank_reveal")
    fastcam.set_backend("triton")
    B, C, H, W = 2, 3, 9, 7
    rank = torch.stack([torch.randperm(H * W) for _ in range(B)])
    counts, index = torch.tensor([0, 63, 20, 5]), torch.tensor([1, 0, 0, 1])
    src = torch.randn(B, C, H, W, dtype=dtype) if which != "dst" else None
    dst = torch.randn(B, C, H, W, dtype=dtype) if which != "src" else None
    mean, std = random_norm(C, dtype, nm)
    out = fastcam.ops.rank_reveal(rank, counts, index, src, dst, mean=mean, std=std)
    assert calls, "the op did not reach the Triton kernel"
    ref = reference.rank_reveal(rank, counts, index, src, dst, mean, std)
    assert out.shape == ref.shape and out.dtype == dtype
    torch.testing.assert_close(out, ref, **tol(dtype))


# The kernel compiled for sm_80 and sm_90 (tests/_triton_aot.py), float32 and
# float64, with every HAS_* flag on and off (src or dst, never neither).
_TUNERS = {"_rank_reveal_kernel": "_rank_reveal"}
_MODULE = "fastcam.kernels.triton.rank_reveal"
_FLAGS = ("HAS_MEAN", "HAS_STD", "HAS_SRC", "HAS_DST")


@pytest.fixture(scope="module")
def aot_results(tmp_path_factory):
    jobs = [dict(module=_MODULE, kernel=fn, tuner=tuner, cc=cc, dtype=data, flag=flag,
                 constexprs=dict({f: flag for f in _FLAGS}, HAS_SRC=True),
                 types={n: "*i64" for n in ("index_ptr", "rank_ptr", "counts_ptr")})
            for cc in (80, 90) for fn, tuner in _TUNERS.items()
            for data in ("fp32", "fp64") for flag in (True, False)]
    # and for sm_90 with each size argument equal to 1, as the JIT specialises it
    jobs += size_one_jobs([j for j in jobs if j["cc"] == 90 and j["dtype"] == "fp32"])
    return compile_for_gpu(jobs, {_MODULE: _TUNERS}, tmp_path_factory)


@triton_interp
@pytest.mark.parametrize("cc", [80, 90])
def test_triton_kernels_compile_for_gpu(cc, aot_results):
    assert_compiled(aot_results, cc, tk, variants=4)


@triton_interp
def test_triton_kernels_compile_with_size_one_arguments(aot_results):
    # A size equal to 1 reaches the kernel as a constexpr (a Python int).
    assert_size_one_compiled(aot_results, 90, tk)
    ones = {o for r in aot_results if r["kernel"] == "_rank_reveal_kernel" for o in r["ones"]}
    assert {"C", "HW"} <= ones


# ----------------------------------------------------------------------------
# CUDA, on a GPU
# ----------------------------------------------------------------------------
@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("src_dst", ["x,None", "None,x", "x,base", "None,None"])
@pytest.mark.parametrize("with_norm", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 9, 7), (1, 1, 1, 1), (3, 3, 224, 224)])
def test_rank_reveal_cuda_matches_reference(dtype, src_dst, with_norm, shape):
    from fastcam.kernels import cuda as kcuda

    B, C, H, W = shape
    HW = H * W
    x = torch.rand(B, C, H, W, dtype=dtype, device="cuda")
    base = torch.rand(B, C, H, W, dtype=dtype, device="cuda")
    src, dst = {"x,None": (x, None), "None,x": (None, x), "x,base": (x, base),
                "None,None": (None, None)}[src_dst]
    rank = torch.stack([torch.randperm(HW, device="cuda") for _ in range(B)])
    counts = torch.tensor([0, 1, HW // 2, HW, HW + 5, -1, HW // 3], device="cuda")
    index = torch.randint(0, B, (len(counts),), device="cuda")
    if with_norm:
        mean = torch.rand(C, dtype=dtype, device="cuda")
        std = torch.rand(C, dtype=dtype, device="cuda") + 0.2
    else:
        mean = std = None
    if src is None and dst is None:  # the kernel allows it (zeros); the op does not
        with pytest.raises(ValueError), fastcam.use_backend("cuda"):
            rank_reveal(rank, counts, index, src, dst, mean=mean, std=std)
        return
    got = kcuda.rank_reveal(rank, counts, index, src, dst, mean, None if std is None else 1 / std)
    torch.cuda.synchronize()
    want = reference.rank_reveal(rank, counts, index, src, dst, mean, std)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got, want, **tol)


@needs_gpu
def test_cuda_matches_cpp_kernel():
    from fastcam.kernels import cpp as kcpu
    from fastcam.kernels import cuda as kcuda

    x, base = (torch.rand(3, 3, 40, 36, dtype=torch.float64, device="cuda") for _ in range(2))
    mean = torch.rand(3, dtype=torch.float64, device="cuda")
    std = torch.rand(3, dtype=torch.float64, device="cuda") + 0.2
    index = torch.randint(0, 3, (9,), device="cuda")
    rank = torch.stack([torch.randperm(40 * 36, device="cuda") for _ in range(3)])
    counts = torch.randint(0, 40 * 36 + 1, (9,), device="cuda")
    g = kcuda.rank_reveal(rank, counts, index, x, base, mean, 1 / std)
    c = kcpu.rank_reveal(rank.cpu(), counts.cpu(), index.cpu(), x.cpu(), base.cpu(), mean.cpu(),
                         (1 / std).cpu())
    torch.testing.assert_close(g.cpu(), c, rtol=0, atol=0)


@needs_gpu
def test_cuda_bad_arguments():
    x = torch.rand(2, 3, 8, 8, device="cuda")
    with fastcam.use_backend("cuda"):  # the op casts to one dtype (test_op_hands_the_kernel_one_dtype)
        out = rank_reveal(torch.zeros(2, 64, dtype=torch.long, device="cuda"),
                          torch.zeros(1, dtype=torch.long, device="cuda"),
                          torch.zeros(1, dtype=torch.long, device="cuda"), x, x.double())
    assert out.dtype == torch.float32
    torch.cuda.synchronize()  # no asynchronous error was left behind


@needs_gpu
def test_cuda_backend_through_op_on_side_stream():
    x, base = torch.rand(2, 3, 33, 29, device="cuda"), torch.rand(2, 3, 33, 29, device="cuda")
    mean, std = torch.rand(3, device="cuda"), torch.rand(3, device="cuda") + 0.2
    index = torch.randint(0, 2, (6,), device="cuda")
    rank = torch.stack([torch.randperm(33 * 29, device="cuda") for _ in range(2)])
    counts = torch.randint(0, 33 * 29 + 1, (6,), device="cuda")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with fastcam.use_backend("cuda"), torch.cuda.stream(side):
        rr = rank_reveal(rank, counts, index, x, base, mean=mean, std=std)
    torch.cuda.synchronize()
    torch.testing.assert_close(rr, reference.rank_reveal(rank, counts, index, x, base, mean, std),
                               rtol=1e-6, atol=1e-6)
