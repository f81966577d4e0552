"""Triton kernels of mask_blend and rank_reveal (fastcam/kernels/triton/masked_inputs.py).

(a) Under TRITON_INTERPRET=1 (set by conftest.py before any import) the kernels run
    on CPU tensors and are compared with the eager definitions,
    fastcam/kernels/reference.py, directly (the cpu.py-style interface, 1/std) and
    through fastcam.ops with backend "triton".
(b) Every kernel is compiled ahead of time for sm_80 and sm_90 (no GPU needed).
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
import fastcam.kernels.triton as tpkg  # noqa: E402
from fastcam.kernels.triton import masked_inputs as tk  # noqa: E402

F32, F64 = torch.float32, torch.float64


def _tol(dtype):
    return dict(atol=1e-5, rtol=1e-5) if dtype == F32 else dict(atol=1e-12, rtol=1e-12)


def _norm_args(C, dtype, norm):
    if not norm:
        return None, None
    return torch.randn(C, dtype=dtype), torch.rand(C, dtype=dtype) + 0.5


# ----------------------------------------------------------------------------
# mask_blend
# ----------------------------------------------------------------------------
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
    torch.testing.assert_close(out, ref, **_tol(x.dtype))
    return out


@pytest.mark.parametrize("shape,dtype,bl,nm,ac", MB_CASES,
                         ids=[f"{s}-{str(d)[6:]}-bl{int(b)}-nm{int(n)}-ac{int(a)}"
                              for s, d, b, n, a in MB_CASES])
def test_mask_blend_matches_reference(shape, dtype, bl, nm, ac):
    B, C, H, W, h, w, index = MB_SHAPES[shape]
    x = torch.randn(B, C, H, W, dtype=dtype)
    maps = torch.randn(len(index), h, w, dtype=dtype)
    baseline = torch.randn_like(x) if bl else None
    mean, std = _norm_args(C, dtype, nm)
    index = torch.tensor(index)
    for eps in (0.0, 1e-8):
        _check_mask_blend(x, maps, index, baseline, mean, std, eps, ac)


@pytest.mark.parametrize("sizes", [((37, 31), (5, 7)),    # two pixel blocks per map
                                   ((7, 5), (20, 18)),    # downsampling
                                   ((1, 1), (3, 4)),      # a single output pixel
                                   ((1, 9), (1, 6))])     # single row
@pytest.mark.parametrize("ac", [False, True])
def test_mask_blend_sizes(sizes, ac):
    (H, W), (h, w) = sizes
    x = torch.randn(2, 2, H, W, dtype=F64)
    maps = torch.rand(3, h, w, dtype=F64)
    mean, std = _norm_args(2, F64, True)
    _check_mask_blend(x, maps, torch.tensor([1, 1, 0]), torch.randn_like(x), mean, std, 1e-8, ac)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("eps", [0.0, 1e-8])
def test_mask_blend_constant_maps_mask_everything(dtype, eps):
    # Constant upsampled maps: zero maps at any size, constant maps at x's size
    # (bilinear weights l0 + l1 need not sum to exactly 1, so a non-zero constant
    # map upsampled to another size may vary in its last bits, in the reference
    # too) and a 1x1 map with align_corners=True (weights exactly (1, 0)).
    x = torch.randn(2, 3, 9, 7, dtype=dtype)
    index = torch.tensor([0, 1, 1, 0])
    baseline = torch.randn_like(x)
    mean, std = _norm_args(3, dtype, True)
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


def test_mask_blend_mask_spans_zero_to_one():
    # x = 1, no baseline: the output is the mask itself, exactly 0 at the map's
    # minimum and exactly 1 at its maximum (IEEE division, eps = 0).
    x = torch.ones(1, 1, 11, 9)
    maps = torch.randn(3, 4, 3)
    out = tk.mask_blend(x, maps, torch.zeros(3, dtype=torch.long), None, None, None, 0.0, False)
    for j in range(3):
        assert out[j].min() == 0 and out[j].max() == 1


def test_mask_blend_partial_normalisation():
    # The cpu.py contract: absent mean reads as 0, absent inv_std as 1.
    x = torch.randn(1, 3, 8, 6, dtype=F64)
    maps = torch.randn(2, 3, 3, dtype=F64)
    mean, std = _norm_args(3, F64, True)
    idx = torch.zeros(2, dtype=torch.long)
    ref = reference.mask_blend(x, maps, idx, None, None, None, 1e-8, False)
    got = tk.mask_blend(x, maps, idx, None, mean, None, 1e-8, False)
    torch.testing.assert_close(got, ref - mean.view(1, -1, 1, 1), **_tol(F64))
    got = tk.mask_blend(x, maps, idx, None, None, 1.0 / std, 1e-8, False)
    torch.testing.assert_close(got, ref / std.view(1, -1, 1, 1), **_tol(F64))


def test_mask_blend_empty_and_errors():
    x = torch.randn(1, 3, 5, 4)
    out = tk.mask_blend(x, torch.randn(0, 2, 2), torch.zeros(0, dtype=torch.long),
                        None, None, None, 0.0, False)
    assert out.shape == (0, 3, 5, 4)
    with pytest.raises(TypeError):
        tk.mask_blend(x, torch.randn(1, 2, 2, dtype=F64), torch.zeros(1, dtype=torch.long),
                      None, None, None, 0.0, False)
    with pytest.raises(TypeError):
        tk.mask_blend(x.half(), torch.randn(1, 2, 2).half(), torch.zeros(1, dtype=torch.long),
                      None, None, None, 0.0, False)


# ----------------------------------------------------------------------------
# rank_reveal
# ----------------------------------------------------------------------------
RR_SHAPES = {  # name: (B, C, H, W, index)
    "b1c1": (1, 1, 17, 13, [0, 0, 0, 0]),
    "b2c3": (2, 3, 17, 13, [1, 0, 1, 0, 1]),
    "big": (2, 2, 37, 31, [0, 1, 1]),  # H*W = 1147: two pixel blocks
}
RR_CASES = [(s, dt, which, nm) for s in RR_SHAPES for dt in (F32, F64)
            for which in ("both", "src", "dst") for nm in (True, False)]


@pytest.mark.parametrize("shape,dtype,which,nm", RR_CASES,
                         ids=[f"{s}-{str(d)[6:]}-{w}-nm{int(n)}" for s, d, w, n in RR_CASES])
def test_rank_reveal_matches_reference(shape, dtype, which, nm):
    B, C, H, W, index = RR_SHAPES[shape]
    HW = H * W
    rank = torch.stack([torch.randperm(HW) for _ in range(B)])
    counts = torch.tensor([0, HW, 7, HW // 2, HW - 1][:len(index)])
    src = torch.randn(B, C, H, W, dtype=dtype) if which != "dst" else None
    dst = torch.randn(B, C, H, W, dtype=dtype) if which != "src" else None
    mean, std = _norm_args(C, dtype, nm)
    index = torch.tensor(index)
    out = tk.rank_reveal(rank, counts, index, src, dst, mean, None if std is None else 1.0 / std)
    ref = reference.rank_reveal(rank, counts, index, src, dst, mean, std)
    assert out.shape == ref.shape and out.dtype == dtype
    torch.testing.assert_close(out, ref, **_tol(dtype))
    if not nm:  # pure selection: bit-exact
        assert torch.equal(out, ref)
        if which == "both":
            assert torch.equal(out[0], dst[index[0]])     # counts 0: nothing revealed
            assert torch.equal(out[1], src[index[1]])     # counts H*W: everything


def test_rank_reveal_partial_normalisation_and_errors():
    src = torch.randn(1, 3, 4, 5)
    rank = torch.randperm(20)[None]
    counts, index = torch.tensor([3, 11]), torch.zeros(2, dtype=torch.long)
    mean = torch.randn(3)
    ref = reference.rank_reveal(rank, counts, index, src, None)
    got = tk.rank_reveal(rank, counts, index, src, None, mean, None)
    torch.testing.assert_close(got, ref - mean.view(1, -1, 1, 1))
    with pytest.raises(ValueError):
        tk.rank_reveal(rank, counts, index, None, None, None, None)
    with pytest.raises(TypeError):
        tk.rank_reveal(rank, counts, index, src, src.double(), None, None)
    empty = tk.rank_reveal(rank, counts[:0], index[:0], src, None, None, None)
    assert empty.shape == (0, 3, 4, 5)


# ----------------------------------------------------------------------------
# Through fastcam.ops with backend "triton"
# ----------------------------------------------------------------------------
def _spy(monkeypatch, name):
    calls = []
    fn = getattr(tpkg, name)

    def wrapped(*args):
        calls.append(1)
        return fn(*args)

    monkeypatch.setattr(tpkg, name, wrapped)
    return calls


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("bl,nm,eps,ac", [(True, True, 1e-8, False), (False, False, 0.0, True),
                                          (True, False, 0.0, True)])
def test_mask_blend_op_with_triton_backend(monkeypatch, dtype, bl, nm, eps, ac):
    calls = _spy(monkeypatch, "mask_blend")
    fastcam.set_backend("triton")
    x = torch.randn(2, 3, 15, 11, dtype=dtype)
    maps = torch.randn(5, 4, 3, dtype=dtype)
    index = torch.tensor([0, 1, 1, 0, 1])
    baseline = torch.randn_like(x) if bl else None
    mean, std = _norm_args(3, dtype, nm)
    out = fastcam.ops.mask_blend(x, maps, index, baseline=baseline, mean=mean, std=std, eps=eps,
                                 align_corners=ac)
    assert calls, "the op did not reach the Triton kernel"
    ref = reference.mask_blend(x, maps, index, baseline, mean, std, eps, ac)
    assert out.shape == ref.shape and out.dtype == dtype
    torch.testing.assert_close(out, ref, **_tol(dtype))


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("which,nm", [("both", True), ("src", False), ("dst", True)])
def test_rank_reveal_op_with_triton_backend(monkeypatch, dtype, which, nm):
    calls = _spy(monkeypatch, "rank_reveal")
    fastcam.set_backend("triton")
    B, C, H, W = 2, 3, 9, 7
    rank = torch.stack([torch.randperm(H * W) for _ in range(B)])
    counts, index = torch.tensor([0, 63, 20, 5]), torch.tensor([1, 0, 0, 1])
    src = torch.randn(B, C, H, W, dtype=dtype) if which != "dst" else None
    dst = torch.randn(B, C, H, W, dtype=dtype) if which != "src" else None
    mean, std = _norm_args(C, dtype, nm)
    out = fastcam.ops.rank_reveal(rank, counts, index, src, dst, mean=mean, std=std)
    assert calls, "the op did not reach the Triton kernel"
    ref = reference.rank_reveal(rank, counts, index, src, dst, mean, std)
    assert out.shape == ref.shape and out.dtype == dtype
    torch.testing.assert_close(out, ref, **_tol(dtype))


# ----------------------------------------------------------------------------
# (b) Ahead-of-time compilation for real GPUs
# Compiled for sm_80 and sm_90 in a subprocess (see tests/_triton_aot.py).
_AOT_SCRIPT = r"""
tuners = {mod._map_minmax_kernel: mod._map_minmax,
          mod._mask_blend_kernel: mod._mask_blend,
          mod._rank_reveal_kernel: mod._rank_reveal}
assert set(tuners) == set(mod.KERNELS), "KERNELS and the autotuned launchers disagree"
INT_PTRS = ("index_ptr", "rank_ptr", "counts_ptr")
FLAGS = ("HAS_BASELINE", "HAS_MEAN", "HAS_STD", "HAS_SRC", "HAS_DST", "ALIGN")
results = []
for cc in ccs:
    target = GPUTarget("cuda", cc, 32)
    for fn, tuner in tuners.items():
        cfg = tuner.configs[-1]
        for data in ("fp32", "fp64"):
            for flag in (True, False):
                constexprs = dict(cfg.kwargs)
                if "F64" in fn.arg_names:
                    constexprs["F64"] = data == "fp64"
                for name in FLAGS:
                    if name in fn.arg_names:
                        constexprs[name] = flag
                if "HAS_SRC" in constexprs and not flag:
                    constexprs["HAS_SRC"] = True   # src or dst, never neither
                sig = {}
                for n in fn.arg_names:
                    if n in constexprs:
                        sig[n] = "constexpr"
                    elif n.endswith("_ptr"):
                        sig[n] = "*i64" if n in INT_PTRS else "*" + data
                    elif n == "eps":
                        sig[n] = "fp64"
                    else:
                        sig[n] = "i32"
                attrs = {(i,): [["tt.divisibility", 16]]
                         for i, n in enumerate(fn.arg_names) if n.endswith("_ptr")}
                k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=constexprs,
                                             attrs=attrs),
                                   target=target, options={"num_warps": cfg.num_warps})
                results.append(dict(cc=cc, kernel=fn.__name__, dtype=data, flag=flag,
                                    n_configs=len(tuner.configs), ptx=k.asm["ptx"],
                                    cubin=len(k.asm["cubin"]) if "cubin" in k.asm else None))
print("RESULTS " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def aot_results(tmp_path_factory):
    return run_aot_script(_AOT_SCRIPT, "fastcam.kernels.triton.masked_inputs", tmp_path_factory)


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
