"""mask_blend: every backend against the eager reference (fastcam/kernels/reference.py).

- The parity harness: the op through every compiled backend (cpp; triton under
  TRITON_INTERPRET=1; cuda, skipped without a GPU) x dtype x layout
  (contiguous, non-contiguous, channels_last) x shape (odd sizes, one channel,
  1x1 and 1-row maps, a single output pixel, batch 1 with many maps).
- The op's checks, made once for every backend, and the one dtype it hands
  every kernel.
- C++/OpenMP: the kernel directly (1/std), and the op with backends cpp and
  reference.
- Triton (fastcam/kernels/triton/mask_blend.py): the kernels directly under
  TRITON_INTERPRET=1 (set by conftest.py before any import) and through the op,
  and compiled ahead of time for sm_80 and sm_90 (tests/_triton_aot.py).
- CUDA: the kernels against the reference and the C++ kernel, on a GPU only.
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
from fastcam.ops import mask_blend


# ----------------------------------------------------------------------------
# The parity harness: every backend x dtype x layout x shape
# ----------------------------------------------------------------------------
PARITY_CASES = {  # name: (B, C, H, W, h, w, n), (baseline, normalise, eps, align_corners)
    "odd": ((2, 3, 17, 13, 3, 4, 5), (True, True, 1e-8, False)),
    "channel1": ((2, 1, 8, 8, 2, 2, 3), (False, False, 0.0, True)),
    "map1x1": ((2, 3, 9, 7, 1, 1, 3), (True, False, 0.0, True)),   # align_corners: weights (1, 0)
    "row": ((3, 2, 9, 40, 1, 2, 4), (False, True, 0.0, False)),    # 1-row low-res maps
    "pixel": ((1, 3, 1, 1, 3, 3, 2), (True, True, 0.0, False)),    # a single output pixel
    "many": ((1, 3, 7, 7, 2, 2, 40), (False, True, 1e-8, True)),   # batch 1, many maps
}
def _parity_tol(backend, dtype):
    if dtype == F64:
        return dict(atol=1e-10, rtol=1e-10) if backend == "cuda" else dict(atol=1e-12, rtol=1e-12)
    return dict(atol=1e-4, rtol=1e-4) if backend == "cuda" else dict(atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", list(PARITY_CASES))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("backend", BACKENDS)
def test_parity(backend, dtype, layout, case):
    (B, C, H, W, h, w, n), (bl, nm, eps, ac) = PARITY_CASES[case]
    fastcam.set_backend(backend)
    dev = device_of(backend)
    x = torch.rand(B, C, H, W, dtype=dtype)
    baseline = torch.rand(B, C, H, W, dtype=dtype) if bl else None
    maps = torch.randn(n, h, w, dtype=dtype)
    maps[0] = 0.0                                               # a dead channel
    index = torch.randint(0, B, (n,))
    mean, std = (torch.rand(C, dtype=dtype), torch.rand(C, dtype=dtype) + 0.2) if nm else (None, None)
    xs, ms, ix, bs, mn, sd = moved((x, maps, index, baseline, mean, std), dev, layout)
    out = mask_blend(xs, ms, ix, baseline=bs, mean=mn, std=sd, eps=eps, align_corners=ac)
    ref = reference.mask_blend(x, maps, index, baseline, mean, std, eps, ac)
    assert out.shape == ref.shape and out.dtype == dtype and out.device.type == dev
    torch.testing.assert_close(out.cpu(), ref, **_parity_tol(backend, dtype))


@pytest.mark.parametrize("backend", BACKENDS)
def test_op_checks(backend):
    # One check per condition, at the op, for every backend: the kernels assume
    # valid input.
    fastcam.set_backend(backend)
    x = torch.rand(2, 3, 8, 8, device=device_of(backend))
    index = torch.zeros(1, dtype=torch.long, device=x.device)
    with pytest.raises(ValueError, match="cannot be upsampled"):      # maps of size 0
        mask_blend(x, x.new_empty(1, 0, 2), index)
    with pytest.raises(ValueError, match="one value per channel"):    # one mean per channel
        mask_blend(x, x.new_ones(1, 2, 2), index, mean=x.new_zeros(2), std=x.new_ones(2))
    with pytest.raises(ValueError, match="one value per channel"):
        mask_blend(x, x.new_ones(1, 2, 2), index, mean=x.new_zeros(3), std=x.new_ones(4))
    out = mask_blend(x, x.new_empty(0, 2, 2), index[:0])              # no maps: no copies
    assert out.shape == (0, 3, 8, 8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_op_hands_the_kernel_one_dtype(monkeypatch, backend):
    # Mixed and half-precision inputs reach the kernel as contiguous tensors of one
    # dtype, float32 or float64, on x's device.
    calls = spy(monkeypatch, backend, "mask_blend")
    fastcam.set_backend(backend)
    dev = device_of(backend)
    x = torch.rand(2, 3, 9, 7, device=dev)
    maps = torch.randn(3, 2, 3, dtype=F64, device=dev)
    index = torch.tensor([0, 1, 1], dtype=torch.int32)
    for xs, ms, want in [(x, maps, F32), (x.double(), maps.float(), F64), (x.half(), maps.half(), F32)]:
        out = mask_blend(xs, ms, index, baseline=xs, mean=torch.zeros(3), std=torch.ones(3, dtype=F64))
        args = calls.pop()
        assert_kernel_inputs(args, x.device, want)
        assert args[2].dtype == torch.long
        assert out.dtype == want
        d = lambda t: t.to(want).cpu()  # noqa: E731
        torch.testing.assert_close(out.cpu(), reference.mask_blend(d(xs), d(ms), index.long(), d(xs)),
                                   atol=1e-3 if xs.dtype == torch.half else 1e-5, rtol=1e-3)


def test_op_cuda_backend_rejects_cpu_tensors():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(RuntimeError, match="CUDA tensors only"):
        with fastcam.use_backend("cuda"):
            mask_blend(x, torch.ones(1, 2, 2), torch.zeros(1, dtype=torch.long))


# ----------------------------------------------------------------------------
# C++/OpenMP and the op
# ----------------------------------------------------------------------------
CASES = [  # B, C, H, W, h, w, n
    (1, 3, 17, 13, 3, 4, 5),
    (2, 1, 8, 8, 2, 2, 7),
    (2, 3, 32, 32, 7, 7, 3),
    (1, 3, 5, 5, 5, 5, 1),       # same resolution: no interpolation
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("with_baseline", [False, True])
@pytest.mark.parametrize("with_norm", [False, True])
def test_cpp_kernel_matches_reference(case, dtype, align_corners, with_baseline, with_norm):
    B, C, H, W, h, w, n = case
    x = torch.rand(B, C, H, W, dtype=dtype)
    base = torch.rand(B, C, H, W, dtype=dtype) if with_baseline else None
    maps = torch.randn(n, h, w, dtype=dtype)
    maps[0] = 0.0                     # a dead channel: a constant map masks everything
    index = torch.randint(0, B, (n,))
    mean, std = (t[:C].to(dtype) for t in imagenet_like_norm()) if with_norm else (None, None)
    for eps in (0.0, 1e-8):
        got = cpp.mask_blend(x, maps, index, base, mean, None if std is None else 1 / std, eps,
                             align_corners)
        ref = reference.mask_blend(x, maps, index, base, mean, std, eps, align_corners)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(got, ref, atol=tol, rtol=tol)
    plain = reference.mask_blend(x, maps[:1], index[:1], base, None, None)
    expected = torch.zeros_like(plain) if base is None else base[index[:1]]
    torch.testing.assert_close(plain, expected)


@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_ops_agree_across_backends(backend):
    fastcam.set_backend(backend)
    x = torch.rand(2, 3, 16, 16)
    maps = torch.randn(4, 4, 4)
    index = torch.tensor([0, 1, 0, 1])
    mean, std = imagenet_like_norm()
    out = mask_blend(x, maps, index, mean=mean, std=std)
    torch.testing.assert_close(out, reference.mask_blend(x, maps, index, None, mean, std),
                               atol=1e-6, rtol=1e-5)


def test_op_errors():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="index is required"):
        mask_blend(x, torch.rand(3, 2, 2))
    with pytest.raises(ValueError, match="one entry per map"):
        mask_blend(x, torch.rand(3, 2, 2), torch.tensor([0, 1]))


def test_index_out_of_range():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"index must lie in \[0, 2\), got 2"):
        mask_blend(x, torch.rand(1, 2, 2), torch.tensor([2]))


def _counting_checks(monkeypatch):
    """Count the index range checks (each one a device sync on GPU)."""
    import fastcam.ops._inputs as inputs
    op_mb = importlib.import_module("fastcam.ops.mask_blend")
    op_rr = importlib.import_module("fastcam.ops.rank_reveal")
    ms = importlib.import_module("fastcam.perturbation.masked_scores")

    calls = []

    def counted(index, size, name="index"):
        calls.append(index.numel())
        return inputs.check_index(index, size, name)

    for mod, attr in ((op_mb, "_check_index"), (op_rr, "_check_index"), (ms, "check_index")):
        monkeypatch.setattr(mod, attr, counted)
    return calls


def test_masked_scores_checks_the_index_once_not_per_chunk(monkeypatch):
    from fastcam.perturbation.masked_scores import class_score, masked_scores

    calls = _counting_checks(monkeypatch)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    x, maps = torch.rand(2, 3, 8, 8), torch.rand(10, 2, 2)
    index = torch.tensor([0, 1] * 5)
    scores = masked_scores(model, x, maps, index, class_score(torch.tensor([1, 3])), chunk_size=3)
    assert calls == [10]                                  # one check of all 10, 4 chunks
    expected = model(mask_blend(x, maps, index))[torch.arange(10), torch.tensor([1, 3] * 5)]
    torch.testing.assert_close(scores, expected)
    with pytest.raises(ValueError, match=r"index must lie in \[0, 2\), got 2"):
        masked_scores(model, x, maps, torch.tensor([0, 1] * 4 + [2, 0]),
                      class_score(torch.tensor([1, 3])), chunk_size=3)


def test_op_without_index_check_gives_the_same_chunk():
    x, maps, index = torch.rand(3, 2, 5, 4), torch.rand(4, 2, 3), torch.tensor([2, 0, 1, 2])
    torch.testing.assert_close(mask_blend(x, maps, index, check_index=False),
                               mask_blend(x, maps, index))


# ----------------------------------------------------------------------------
# Triton, under TRITON_INTERPRET=1
# ----------------------------------------------------------------------------
tk = triton_module("mask_blend")


MB_SHAPES = {  # name: (B, C, H, W, h, w, index)
    "b1c1": (1, 1, 17, 13, 3, 4, [0, 0, 0]),
    "b2c3": (2, 3, 17, 13, 3, 4, [1, 0, 0, 1]),
}
MB_CASES = [(s, dt, bl, nm, ac) for s in MB_SHAPES for dt in (F32, F64)
            for bl in (True, False) for nm in (True, False) for ac in (False, True)]


def _check_mask_blend(x, maps, index, baseline, mean, std, eps, ac):
    inv = None if std is None else 1.0 / std
    out = tk.mask_blend(x, maps, index, baseline, mean, inv, eps, ac)
    ref = reference.mask_blend(x, maps, index, baseline, mean, std, eps, ac)
    assert out.shape == ref.shape and out.dtype == x.dtype and out.device == x.device
    torch.testing.assert_close(out, ref, **tol(x.dtype))
    return out


@triton_interp
@pytest.mark.parametrize("shape,dtype,bl,nm,ac", MB_CASES,
                         ids=[f"{s}-{str(d)[6:]}-bl{int(b)}-nm{int(n)}-ac{int(a)}"
                              for s, d, b, n, a in MB_CASES])
def test_triton_kernels_match_reference(shape, dtype, bl, nm, ac):
    B, C, H, W, h, w, index = MB_SHAPES[shape]
    x = torch.randn(B, C, H, W, dtype=dtype)
    maps = torch.randn(len(index), h, w, dtype=dtype)
    baseline = torch.randn_like(x) if bl else None
    mean, std = random_norm(C, dtype, nm)
    index = torch.tensor(index)
    for eps in (0.0, 1e-8):
        _check_mask_blend(x, maps, index, baseline, mean, std, eps, ac)


@triton_interp
@pytest.mark.parametrize("sizes", [((37, 31), (5, 7)),    # two pixel blocks per map
                                   ((7, 5), (20, 18)),    # downsampling
                                   ((1, 1), (3, 4)),      # a single output pixel
                                   ((1, 9), (1, 6))])     # single row
@pytest.mark.parametrize("ac", [False, True])
def test_triton_sizes(sizes, ac):
    (H, W), (h, w) = sizes
    x = torch.randn(2, 2, H, W, dtype=F64)
    maps = torch.rand(3, h, w, dtype=F64)
    mean, std = random_norm(2, F64, True)
    _check_mask_blend(x, maps, torch.tensor([1, 1, 0]), torch.randn_like(x), mean, std, 1e-8, ac)


@triton_interp
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("eps", [0.0, 1e-8])
def test_triton_constant_maps_mask_everything(dtype, eps):
    # Constant upsampled maps: zero maps at any size, constant maps at x's size
    # (bilinear weights l0 + l1 need not sum to exactly 1, so a non-zero constant
    # map upsampled to another size may vary in its last bits, in the reference
    # too) and a 1x1 map with align_corners=True (weights exactly (1, 0)).
    x = torch.randn(2, 3, 9, 7, dtype=dtype)
    index = torch.tensor([0, 1, 1, 0])
    baseline = torch.randn_like(x)
    mean, std = random_norm(3, dtype, True)
    small = torch.randn(4, 3, 4, dtype=dtype)
    small[0] = 0.0
    full = torch.randn(4, 9, 7, dtype=dtype)
    full[2] = 3.5
    for maps, const, ac in [(small, 0, False), (small, 0, True), (full, 2, False), (full, 2, True),
                            (torch.full((4, 1, 1), 0.7, dtype=dtype), 1, True)]:
        out = _check_mask_blend(x, maps, index, None, None, None, eps, ac)
        assert torch.isfinite(out).all()
        assert (out[const] == 0).all()                          # m = 0: x * 0
        assert maps.shape[-1] == 1 or (out[(const + 1) % 4] != 0).any()
        out = _check_mask_blend(x, maps, index, baseline, mean, std, eps, ac)
        b = baseline[index[const]]                              # m = 0: the baseline
        assert torch.equal(out[const], (b - mean.view(-1, 1, 1)) * (1.0 / std).view(-1, 1, 1))


@triton_interp
def test_triton_mask_spans_zero_to_one():
    # x = 1, no baseline: the output is the mask itself, exactly 0 at the map's
    # minimum and exactly 1 at its maximum (IEEE division, eps = 0).
    x = torch.ones(1, 1, 11, 9)
    maps = torch.randn(3, 4, 3)
    out = tk.mask_blend(x, maps, torch.zeros(3, dtype=torch.long), None, None, None, 0.0, False)
    for j in range(3):
        assert out[j].min() == 0 and out[j].max() == 1


@triton_interp
def test_triton_partial_normalisation():
    # The cpp.py contract: absent mean reads as 0, absent inv_std as 1.
    x = torch.randn(1, 3, 8, 6, dtype=F64)
    maps = torch.randn(2, 3, 3, dtype=F64)
    mean, std = random_norm(3, F64, True)
    idx = torch.zeros(2, dtype=torch.long)
    ref = reference.mask_blend(x, maps, idx, None, None, None, 1e-8, False)
    got = tk.mask_blend(x, maps, idx, None, mean, None, 1e-8, False)
    torch.testing.assert_close(got, ref - mean.view(1, -1, 1, 1), **tol(F64))
    got = tk.mask_blend(x, maps, idx, None, None, 1.0 / std, 1e-8, False)
    torch.testing.assert_close(got, ref / std.view(1, -1, 1, 1), **tol(F64))


@triton_interp
def test_triton_empty():
    x = torch.randn(1, 3, 5, 4)
    out = tk.mask_blend(x, torch.randn(0, 2, 2), torch.zeros(0, dtype=torch.long),
                        None, None, None, 0.0, False)
    assert out.shape == (0, 3, 5, 4)


@triton_interp
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("bl,nm,eps,ac", [(True, True, 1e-8, False), (False, False, 0.0, True),
                                          (True, False, 0.0, True)])
def test_triton_op(monkeypatch, dtype, bl, nm, eps, ac):
    calls = spy(monkeypatch, "triton", "mask_blend")
    fastcam.set_backend("triton")
    x = torch.randn(2, 3, 15, 11, dtype=dtype)
    maps = torch.randn(5, 4, 3, dtype=dtype)
    index = torch.tensor([0, 1, 1, 0, 1])
    baseline = torch.randn_like(x) if bl else None
    mean, std = random_norm(3, dtype, nm)
    out = fastcam.ops.mask_blend(x, maps, index, baseline=baseline, mean=mean, std=std, eps=eps,
                                 align_corners=ac)
    assert calls, "the op did not reach the Triton kernel"
    ref = reference.mask_blend(x, maps, index, baseline, mean, std, eps, ac)
    assert out.shape == ref.shape and out.dtype == dtype
    torch.testing.assert_close(out, ref, **tol(dtype))


# Both kernels compiled for sm_80 and sm_90 (tests/_triton_aot.py), float32 and
# float64, with every HAS_* flag and ALIGN on and off.
_TUNERS = {"_map_minmax_kernel": "_map_minmax", "_mask_blend_kernel": "_mask_blend"}
_MODULE = "fastcam.kernels.triton.mask_blend"
_FLAGS = ("HAS_BASELINE", "HAS_MEAN", "HAS_STD", "ALIGN")


@pytest.fixture(scope="module")
def aot_results(tmp_path_factory):
    jobs = [dict(module=_MODULE, kernel=fn, tuner=tuner, cc=cc, dtype=data, flag=flag,
                 constexprs=dict({f: flag for f in _FLAGS}, F64=data == "fp64"),
                 types=dict(index_ptr="*i64", eps="fp64"))
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
    ones = {o for r in aot_results if r["kernel"] == "_mask_blend_kernel" for o in r["ones"]}
    assert {"C", "h", "w", "H", "W"} <= ones


# ----------------------------------------------------------------------------
# CUDA, on a GPU
# ----------------------------------------------------------------------------
# (B, C, H, W, h, w, n): odd sizes, a single channel, no interpolation, a 1-high
# map, downsampling, a map too big for shared memory (float64), a single output
# pixel, and ResNet-like 7x7 -> 224 with many maps. No 1x1 maps: their
# upsampling is constant only up to rounding, and (u - min)/(max - min) of that
# rounding noise differs between implementations (the reference's included).
CUDA_CASES = [
    (1, 3, 17, 13, 3, 4, 5),
    (2, 1, 8, 8, 2, 2, 7),
    (1, 3, 5, 5, 5, 5, 1),
    (3, 2, 9, 40, 1, 2, 4),
    (1, 2, 6, 3, 9, 11, 2),
    (2, 3, 23, 31, 100, 90, 2),
    (1, 3, 1, 1, 3, 3, 2),
    (2, 3, 224, 224, 7, 7, 40),
]


def _mask_blend_inputs(case, dtype, with_baseline, with_norm):
    B, C, H, W, h, w, n = case
    x = torch.rand(B, C, H, W, dtype=dtype, device="cuda")
    base = torch.rand(B, C, H, W, dtype=dtype, device="cuda") if with_baseline else None
    maps = torch.randn(n, h, w, dtype=dtype, device="cuda")
    maps[0] = 0.0                     # a dead channel: a constant map masks everything
    index = torch.randint(0, B, (n,), device="cuda")
    if with_norm:
        mean = torch.rand(C, dtype=dtype, device="cuda")
        std = torch.rand(C, dtype=dtype, device="cuda") + 0.2
    else:
        mean = std = None
    return x, base, maps, index, mean, std


@needs_gpu
@pytest.mark.parametrize("case", CUDA_CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("with_baseline,with_norm", [(False, False), (True, True),
                                                     (True, False), (False, True)])
def test_mask_blend_cuda_matches_reference(case, dtype, align_corners, with_baseline, with_norm):
    from fastcam.kernels import cuda as kcuda

    x, base, maps, index, mean, std = _mask_blend_inputs(case, dtype, with_baseline, with_norm)
    inv_std = None if std is None else 1 / std
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    for eps in (0.0, 1e-8):
        got = kcuda.mask_blend(x, maps, index, base, mean, inv_std, eps, align_corners)
        torch.cuda.synchronize()
        d = lambda t: None if t is None else t.double()  # noqa: E731
        want = reference.mask_blend(x.double(), maps.double(), index, d(base), d(mean), d(std), eps,
                              align_corners)
        assert got.shape == want.shape and got.dtype == dtype
        torch.testing.assert_close(got.double(), want, **tol)


@needs_gpu
def test_cuda_matches_cpp_kernel():
    from fastcam.kernels import cpp as kcpu
    from fastcam.kernels import cuda as kcuda

    x, base, maps, index, mean, std = _mask_blend_inputs((3, 3, 40, 36, 7, 6, 9),
                                                         torch.float64, True, True)
    g = kcuda.mask_blend(x, maps, index, base, mean, 1 / std, 1e-8, False)
    c = kcpu.mask_blend(x.cpu(), maps.cpu(), index.cpu(), base.cpu(), mean.cpu(),
                        (1 / std).cpu(), 1e-8, False)
    torch.testing.assert_close(g.cpu(), c, rtol=1e-12, atol=1e-12)


@needs_gpu
def test_cuda_empty_and_bad_arguments():
    from fastcam.kernels import cuda as kcuda

    x = torch.rand(2, 3, 8, 8, device="cuda")
    out = kcuda.mask_blend(x, x.new_empty(0, 2, 2), torch.zeros(0, dtype=torch.long,
                                                                 device="cuda"),
                           None, None, None, 0.0, False)
    assert out.shape == (0, 3, 8, 8)
    with fastcam.use_backend("cuda"):  # the checks are the op's (see test_op_checks)
        with pytest.raises(ValueError):  # maps of size 0 cannot be upsampled
            mask_blend(x, x.new_empty(1, 0, 2), torch.zeros(1, dtype=torch.long, device="cuda"))
        with pytest.raises(ValueError):  # one mean per channel
            mask_blend(x, x.new_ones(1, 2, 2), torch.zeros(1, dtype=torch.long, device="cuda"),
                       mean=x.new_zeros(2), std=x.new_ones(2))
        with pytest.raises(RuntimeError):  # CPU tensors
            mask_blend(x.cpu(), x.new_ones(1, 2, 2).cpu(), torch.zeros(1, dtype=torch.long))
    torch.cuda.synchronize()  # no asynchronous error was left behind


@needs_gpu
def test_cuda_backend_through_op_on_side_stream():
    x, base, maps, index, mean, std = _mask_blend_inputs((2, 3, 33, 29, 7, 7, 6),
                                                         torch.float32, True, True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with fastcam.use_backend("cuda"), torch.cuda.stream(side):
        mb = mask_blend(x, maps, index, baseline=base, mean=mean, std=std, eps=1e-8)
    torch.cuda.synchronize()
    torch.testing.assert_close(mb, reference.mask_blend(x, maps, index, base, mean, std, 1e-8),
                               rtol=1e-4, atol=1e-4)
