"""adaptive_kde: batched locally adaptive KDE (Shimazaki & Shinomoto's ssvkernel)
and peak counts.

(a) The eager reference (fastcam/kernels/reference/adaptive_kde.py) and the C++ kernel
    against the oracle, the PyPI package adaptivekde (a Python port of
    ssvkernel), on samples in [0, 1] that include 0 and 1 (where the port's span
    and smallest gap, taken over all samples, equal ours), Z in {49, 100, 169,
    196}, with ties and repeated values: densities within 1e-6 relative, peak
    counts equal to the local maxima of the oracle's density counted here.
(b) What the oracle does not define the same way, against hand-checked
    expectations: out-of-range values dropped, channels without an estimate
    (empty, single value, all equal, only {0, 1}), sparse channels on a coarse
    grid; batch = per channel; the op (shapes, minmax, backends, fake tensors).
(c) The parity harness: the op through every compiled backend (cpp; triton
    under TRITON_INTERPRET=1; cuda, skipped without a GPU) x input dtype x
    layout x shape against the reference, and the op's one check of Z.
(d) The Triton kernel under TRITON_INTERPRET=1 (a few small channels) against the
    reference, and compiled ahead of time for sm_80 and sm_90 (subprocess).
(e) The CUDA kernel against the reference and the C++ kernel, on a GPU only.
"""
import warnings

import numpy as np
import pytest
import torch

import fastcam
from _parity import BACKENDS as COMPILED
from _parity import (F64, device_of, in_layout, kernel_module, needs_gpu, triton_interp,
                     triton_module)
from _triton_aot import compile_for_gpu, size_one_jobs
from fastcam.ops.adaptive_kde import adaptive_kde as adaptive_kde_op

ref = kernel_module("reference", "adaptive_kde")


def cpp_adaptive_kde(x, Z=None):
    from fastcam.kernels import cpp

    return cpp.adaptive_kde(x, Z)


BACKENDS = {"reference": ref.adaptive_kde, "cpp": cpp_adaptive_kde}


def count_peaks_np(y):
    """Interior local maxima, a flat top counted once (as MATLAB's findpeaks):
    a run y[i..j] of equal values with y[i-1] < y[i] and y[j] > y[j+1]."""
    y = list(map(float, y))
    peaks, i = 0, 1
    while i < len(y) - 1:
        if y[i] > y[i - 1]:
            j = i
            while j + 1 < len(y) and y[j + 1] == y[i]:
                j += 1
            if j + 1 < len(y) and y[j + 1] < y[i]:
                peaks += 1
            i = j + 1
        else:
            i += 1
    return peaks


def _oracle(x, Z):
    akde = pytest.importorskip("adaptivekde.ssvkernel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the port's bootstrap divides by zero at times
        # nbs (bootstrap samples for confidence bands) does not affect the density
        y = akde.ssvkernel(np.asarray(x, float), tin=np.linspace(0, 1, Z), M=10,
                           WinFunc="Gauss", nbs=1)[0]
    return torch.from_numpy(np.asarray(y, float))


def _kinds(rng, S):
    """Channels of S values in [0, 1] that include 0 and 1."""
    out = {
        "beta": rng.beta(2, 5, S),
        "bimodal": np.clip(np.concatenate([rng.normal(0.2, 0.05, S // 2),
                                           rng.normal(0.7, 0.1, S - S // 2)]), 0, 1),
        "relu": np.maximum(rng.normal(-0.3, 1, S), 0),          # many exact zeros
        "ties": np.round(rng.random(S) * 7) / 7,                # 8 distinct values
        "repeats": np.repeat(rng.beta(2, 3, (S + 3) // 4), 4)[:S],
    }
    for v in out.values():
        v /= v.max()
        v[0], v[-1] = 0.0, 1.0
    return out


ZS = [49, 100, 169, 196]


@pytest.fixture(scope="module")
def oracle_cases():
    """{Z: (samples (n, S), oracle densities (n, Z))}; one channel at Z = 49 has
    S = 30 < Z samples (the grid size is an argument)."""
    rng = np.random.default_rng(7)
    cases = {}
    for Z in ZS:
        chans = list(_kinds(rng, Z).values())
        cases[Z] = (torch.tensor(np.stack(chans)),
                    torch.stack([_oracle(c, Z) for c in chans]))
    x30 = _kinds(rng, 30)["beta"]
    cases["S30-Z49"] = (torch.tensor(x30)[None], _oracle(x30, 49)[None])
    return cases


def _assert_rel(d, y, rtol=1e-6):
    """|d − y| <= rtol·|y| pointwise (+ 1e-12 of the channel's maximum, for values
    that underflow)."""
    assert d.shape == y.shape and d.dtype == F64
    tol = rtol * y.abs() + 1e-12 * y.abs().amax(-1, keepdim=True)
    bad = (d - y).abs() > tol
    assert not bad.any(), f"max rel err {((d - y).abs() / y.abs()).max():.3e}"


@pytest.mark.parametrize("backend", list(BACKENDS))
@pytest.mark.parametrize("Z", ZS + ["S30-Z49"])
def test_matches_oracle(oracle_cases, backend, Z):
    x, y = oracle_cases[Z]
    grid = 49 if Z == "S30-Z49" else Z
    d, p = BACKENDS[backend](x, grid)
    _assert_rel(d, y)
    assert p.dtype == torch.long
    assert p.tolist() == [count_peaks_np(r) for r in y]


def test_peak_counting_rule():
    y = torch.tensor([[0, 1, 0, 2, 2, 1, 3, 3, 3, 4, 0],      # 1, the plateau 2 2, 4
                      [5, 4, 4, 3, 2, 2, 1, 1, 0, 0, 0],      # monotone: none
                      [1, 1, 2, 2, 1, 1, 2, 2, 2, 2, 2],      # flat top, then edge plateau
                      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=F64)
    assert ref.count_peaks(y).tolist() == [3, 0, 1, 0]
    assert [count_peaks_np(r) for r in y] == [3, 0, 1, 0]
    signal = pytest.importorskip("scipy.signal")
    assert [len(signal.find_peaks(r.numpy())[0]) for r in y] == [3, 0, 1, 0]


# ----------------------------------------------------------------------------
# (b) Hand-checked expectations
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_out_of_range_values_are_dropped(backend):
    # A channel = in-range samples (with 0 and 1) + values outside [0, 1]: the
    # estimate is the oracle's on the in-range samples alone.
    rng = np.random.default_rng(3)
    Z = 49
    inr = _kinds(rng, 40)["bimodal"]
    junk = np.array([-0.5, 1.5, -1e-9, 1 + 1e-9, 3.0, -2.0, np.nan, 7.0, -0.1])
    x = torch.tensor(np.concatenate([inr[:20], junk, inr[20:]]))[None]
    d, p = BACKENDS[backend](x, Z)
    y = _oracle(inr, Z)[None]
    _assert_rel(d, y)
    assert p.tolist() == [count_peaks_np(y[0])]


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_channels_without_estimate(backend):
    S = 25
    rows = {
        "empty": torch.full((S,), -1.0),                              # nothing in [0, 1]
        "outside": torch.linspace(1.01, 3.0, S),
        "single": torch.tensor([0.3] + [2.0] * (S - 1)),               # one in-range value
        "equal": torch.tensor([0.42] * 10 + [-3.0] * (S - 10)),        # all in-range equal
        "constant": torch.full((S,), 0.7),
        "zero_one": torch.tensor([0.0, 1.0] * 5 + [5.0] * (S - 10)),   # one-point coarse grid
    }
    x = torch.stack(list(rows.values())).to(F64)
    d, p = BACKENDS[backend](x, 36)
    assert d.shape == (len(rows), 36)
    assert torch.equal(d, torch.zeros_like(d)) and p.tolist() == [0] * len(rows)
    assert ref.grid_sizes(x, 36).tolist() == [0] * len(rows)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_sparse_channel_on_coarse_grid(backend):
    # In-range samples {0, 0.5, 1}: smallest gap 0.5 > 1/(Z−1), so the estimate is
    # made on linspace(0, 1, ceil(1/0.5)) = {0, 1} and interpolated linearly: the
    # density is affine, its two end values sum to 1 (Riemann mass on a grid of
    # step 1), histogram y = (1, 2) makes it increasing, and it has no peak.
    Z = 49
    x = torch.tensor([[0.0, 0.5, 1.0, -4.0, 9.0]], dtype=F64)
    assert ref.grid_sizes(x, Z).tolist() == [2]
    d, p = BACKENDS[backend](x, Z)
    d = d[0]
    assert torch.allclose(d[:-2] - 2 * d[1:-1] + d[2:], torch.zeros(Z - 2, dtype=F64), atol=1e-15)
    assert abs(float(d[0] + d[-1]) - 1.0) < 1e-14 and float(d[-1]) > float(d[0]) > 0
    assert p.tolist() == [0]
    _assert_rel(d[None], _oracle([0.0, 0.5, 1.0], Z)[None])
    # a 4-point coarse grid (gap 0.3 -> ceil(1/0.3) = 4) also agrees with the oracle
    xs = [0.0, 0.3, 0.3, 0.6, 1.0, 1.0]
    d, p = BACKENDS[backend](torch.tensor([xs], dtype=F64), Z)
    assert ref.grid_sizes(torch.tensor([xs], dtype=F64), Z).tolist() == [4]
    y = _oracle(xs, Z)[None]
    _assert_rel(d, y)
    assert p.tolist() == [count_peaks_np(y[0])]


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_batch_equals_per_channel(backend):
    rng = np.random.default_rng(11)
    Z = 36
    chans = list(_kinds(rng, Z).values())
    chans += [np.full(Z, -1.0), np.r_[[0.0, 0.5, 1.0], np.full(Z - 3, 2.0)],
              rng.normal(0.5, 0.4, Z)]
    x = torch.tensor(np.stack(chans))
    d, p = BACKENDS[backend](x, Z)
    for i in range(len(chans)):
        di, pi = BACKENDS[backend](x[i:i + 1], Z)
        if backend == "cpp":
            assert torch.equal(di[0], d[i]) and pi.item() == p[i].item()
        else:
            torch.testing.assert_close(di[0], d[i], rtol=1e-12, atol=1e-15)
            assert pi.item() == p[i].item()


def test_cpp_matches_reference_and_threads():
    torch.manual_seed(0)
    x = torch.rand(64, 49, dtype=F64) ** 3
    x[:, 0], x[:, 1] = 0.0, 1.0
    x[::7, 5:] = 2.0                     # some sparse channels on coarse grids
    x[3] = 0.25                          # no estimate
    d, p = cpp_adaptive_kde(x)
    d0, p0 = ref.adaptive_kde(x)
    torch.testing.assert_close(d, d0, rtol=1e-9, atol=1e-12)
    assert torch.equal(p, p0)
    prev = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        d1, p1 = cpp_adaptive_kde(x)
    finally:
        torch.set_num_threads(prev)
    assert torch.equal(d, d1) and torch.equal(p, p1)


@pytest.mark.parametrize("backend", ["reference", "cpp"])
def test_op(backend):
    fastcam.set_backend(backend)
    rng = np.random.default_rng(5)
    raw = torch.tensor(np.stack([np.stack(list(_kinds(rng, 49).values())[:3])] * 2)) * 6.0 - 1.0
    d, p = adaptive_kde_op(raw.to(torch.float32), minmax=True)       # (B=2, K=3, 49)
    assert d.shape == (2, 3, 49) and d.dtype == F64 and p.shape == (2, 3) and p.dtype == torch.long
    # min-max makes every channel span exactly [0, 1]: the oracle applies
    xm = raw.to(torch.float32).to(F64)
    lo, hi = xm.amin(-1, keepdim=True), xm.amax(-1, keepdim=True)
    xm = (xm - lo) / (hi - lo)
    y = torch.stack([_oracle(xm[0, k], 49) for k in range(3)])
    _assert_rel(d[0], y)
    _assert_rel(d[1], y)
    assert p[0].tolist() == [count_peaks_np(r) for r in y]
    # without minmax, values outside [0, 1] are dropped; grid_size sets Z
    d2, p2 = adaptive_kde_op(raw, grid_size=20)
    d3, p3 = ref.adaptive_kde(raw.reshape(6, 49), 20)
    torch.testing.assert_close(d2.reshape(6, 20), d3, rtol=1e-9, atol=1e-12)
    assert p2.reshape(6).tolist() == p3.tolist()
    # a constant channel has no estimate after min-max
    d4, p4 = adaptive_kde_op(torch.full((2, 10), 3.0), minmax=True)
    assert torch.equal(d4, torch.zeros(2, 10, dtype=F64)) and p4.tolist() == [0, 0]
    with pytest.raises(ValueError):
        adaptive_kde_op(torch.rand(3, 10), grid_size=1)


def test_op_fake_tensor():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        d, p = adaptive_kde_op(torch.empty(2, 4, 49), grid_size=30)
        assert d.shape == (2, 4, 30) and d.dtype == F64
        assert p.shape == (2, 4) and p.dtype == torch.long


# ----------------------------------------------------------------------------
# (c) The parity harness: every compiled backend x dtype x layout x shape
# ----------------------------------------------------------------------------
def _parity_samples(case):
    """(..., S) samples of the kinds above, the grid size Z."""
    rng = np.random.default_rng(9)
    if case == "one":                                    # a single channel
        return torch.tensor(_kinds(rng, 18)["bimodal"])[None], 20
    if case == "mixed":                                  # estimates, none, a coarse grid, junk
        k = _kinds(rng, 16)
        chans = [k["beta"], k["ties"], np.r_[[0.0, 0.3, 0.7, 1.0], np.full(12, -1.0)],
                 np.full(16, 0.5), rng.normal(0.5, 0.4, 16)]
        return torch.tensor(np.stack(chans)), 16
    k = _kinds(rng, 12)                                  # (B, K, S) with S < Z
    return torch.tensor(np.stack([k["relu"], k["repeats"], k["beta"], k["bimodal"]])).view(2, 2, 12), 15


@pytest.mark.parametrize("case", ["one", "mixed", "batched"])
@pytest.mark.parametrize("layout", ["contiguous", "noncontiguous"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("backend", COMPILED)
def test_parity(backend, dtype, layout, case):
    fastcam.set_backend(backend)
    x, Z = _parity_samples(case)
    x = x.to(dtype)
    xs = in_layout(x.to(device_of(backend)), layout)
    assert xs.is_contiguous() == (layout == "contiguous")
    d, p = adaptive_kde_op(xs, grid_size=Z)
    d0, p0 = ref.adaptive_kde(x.reshape(-1, x.shape[-1]).to(F64), Z)
    assert d.shape == (*x.shape[:-1], Z) and d.dtype == F64 and p.dtype == torch.long
    assert d.device.type == device_of(backend)
    torch.testing.assert_close(d.cpu().reshape(-1, Z), d0, rtol=1e-9, atol=1e-12)
    assert p.cpu().reshape(-1).tolist() == p0.tolist()


@pytest.mark.parametrize("backend", COMPILED)
def test_op_checks_the_grid_once(backend):
    # Z < 2 is checked by the op alone, for every backend.
    fastcam.set_backend(backend)
    x = torch.rand(3, 10, device=device_of(backend))
    with pytest.raises(ValueError, match="at least 2 points"):
        adaptive_kde_op(x, grid_size=1)
    with pytest.raises(ValueError, match="at least 2 points"):
        adaptive_kde_op(x[:, :1])                                 # Z defaults to S = 1


def test_op_cuda_backend_rejects_cpu_tensors():
    with pytest.raises(RuntimeError, match="CUDA tensors only"):
        with fastcam.use_backend("cuda"):
            adaptive_kde_op(torch.rand(3, 10), grid_size=10)


# ----------------------------------------------------------------------------
# (d) Triton: under the interpreter, and compiled for sm_80 / sm_90
# ----------------------------------------------------------------------------
tk = triton_module("adaptive_kde")


@triton_interp
def test_triton_matches_reference():
    tk = triton_module("adaptive_kde")
    rng = np.random.default_rng(2)
    S, Z = 18, 20
    k = _kinds(rng, S)
    chans = [k["beta"], k["ties"],
             np.r_[[0.0, 0.3, 0.7, 1.0], np.full(S - 4, -1.0)],     # coarse grid (L = 4)
             np.full(S, 0.5),                                       # no estimate
             rng.normal(0.5, 0.4, S)]                               # out-of-range values
    x = torch.tensor(np.stack(chans))
    d, p = tk.adaptive_kde(x, Z)
    d0, p0 = ref.adaptive_kde(x, Z)
    assert d.shape == (5, Z) and d.dtype == F64 and p.dtype == torch.long
    torch.testing.assert_close(d, d0, rtol=1e-10, atol=1e-13)
    assert p.tolist() == p0.tolist()


@triton_interp
def test_op_with_triton_backend(monkeypatch):
    import fastcam.kernels.triton as tpkg

    calls = []
    fn = tpkg.adaptive_kde
    monkeypatch.setattr(tpkg, "adaptive_kde", lambda *a: calls.append(1) or fn(*a))
    fastcam.set_backend("triton")
    rng = np.random.default_rng(4)
    x = torch.tensor(np.stack([_kinds(rng, 16)["bimodal"], _kinds(rng, 16)["relu"]]))
    d, p = adaptive_kde_op(x[None], grid_size=16)
    assert calls, "the op did not reach the Triton kernel"
    d0, p0 = ref.adaptive_kde(x, 16)
    torch.testing.assert_close(d[0], d0, rtol=1e-10, atol=1e-13)
    assert p[0].tolist() == p0.tolist()


# Compiled for sm_80 and sm_90 (tests/_triton_aot.py): both paths of the output
# stage, one per target, with the configuration the launcher picks for BLOCK_L 64.
_MODULE = "fastcam.kernels.triton.adaptive_kde"


@pytest.fixture(scope="module")
def aot_results(tmp_path_factory):
    pytest.importorskip("triton")
    block_m, num_warps = tk.adaptive_kde_config(64)
    jobs = [dict(module=_MODULE, kernel="_adaptive_kde_kernel", cc=cc, dtype="fp64",
                 config=dict(kwargs=dict(BLOCK_M=block_m), num_warps=num_warps),
                 constexprs=dict(INTERP=cc == 80, BLOCK_L=64, BLOCK_Z=64, BLOCK_S=64, NSTEP=6),
                 types=dict(idx_ptr="*i64", peaks_ptr="*i64"))
            for cc in (80, 90)]
    jobs += size_one_jobs(jobs[1:])  # no integer argument is specialised: nothing more
    results = compile_for_gpu(jobs, {_MODULE: {"_adaptive_kde_kernel": None}}, tmp_path_factory)
    for r in results:
        ptx = r.pop("ptx")
        r.update(entry=".entry _adaptive_kde_kernel" in ptx, target=(".target sm_%d" % r["cc"]) in ptx,
                 f64=".f64" in ptx)
    return results


@triton_interp
@pytest.mark.parametrize("cc", [80, 90])
def test_triton_kernel_compiles_for_gpu(cc, aot_results):
    res = [r for r in aot_results if r["cc"] == cc]
    assert len(res) == 1                            # the size-one job compiled nothing
    r = res[0]
    assert r["entry"] and r["target"] and r["f64"]
    assert r["cubin"] is None or r["cubin"] > 0


@triton_interp
def test_triton_kernel_is_compiled_once_per_block_size(aot_results):
    # The grid size L (and S, Z, M, max_iter) vary with the data: all are in the
    # kernel's do_not_specialize, so the size-one job (every integer argument
    # the JIT would specialise, set to 1 in turn) found none to compile, and the
    # kernel compiles once per (BLOCK_L, BLOCK_Z, BLOCK_S, INTERP).
    assert [r for r in aot_results if r.get("size_one")] == []
    assert len(aot_results) == 2


@pytest.mark.skipif(tk is None, reason="needs triton")
@pytest.mark.parametrize("BLOCK_L", [2, 16, 64, 128, 256, 512, 1024])
def test_triton_adaptive_kde_config_is_capped(BLOCK_L):
    # One configuration per block size, the convolution tile capped at
    # TILE_PER_THREAD float64 values per thread. Measured once here with ptxas
    # 13.0 for sm_90a at BLOCK_L 256: (8, 8 warps) uses 194 registers and spills
    # nothing; the autotuner's old (8, 2 warps) spilled 212 bytes.
    block_m, num_warps = tk.adaptive_kde_config(BLOCK_L)
    assert num_warps in (4, 8, 16) and 1 <= block_m <= 16 and block_m & (block_m - 1) == 0
    assert block_m * BLOCK_L <= tk.TILE_PER_THREAD * 32 * num_warps
    assert block_m == 16 or 2 * block_m * BLOCK_L > tk.TILE_PER_THREAD * 32 * num_warps


# ----------------------------------------------------------------------------
# (e) CUDA (one thread per channel, csrc/common/adaptive_kde_math.h), on a GPU
# ----------------------------------------------------------------------------
def _adaptive_kde_samples(n=96, S=49, seed=0):
    """Channels of the kinds the CPU tests use, plus sparse channels (coarse
    internal grids), channels without an estimate, ties and out-of-range values."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, S, generator=g, dtype=torch.float64) ** 3
    x[:, 0], x[:, 1] = 0.0, 1.0
    x[::7, 5:] = 2.0                                     # sparse: coarse grids
    x[3] = 0.25                                          # all equal: no estimate
    x[4] = -1.0                                          # nothing in range
    x[5, 2:] = torch.round(x[5, 2:] * 7) / 7             # ties
    x[6, 2:] = torch.randn(S - 2, generator=g, dtype=torch.float64) * 0.5 + 0.5  # some dropped
    return x


def _assert_gpu_adaptive_kde_agrees(d, p, d0, p0, max_flipped=0.05):
    """What can be promised of the CUDA kernel against a CPU result (d0, p0):
    its device code contracts products into FMAs and uses the GPU's exp (within
    1 ulp, not glibc's), so values differ by rounding, and where two bandwidth
    costs or two golden-section costs tie to rounding the decision can flip,
    after which that channel's estimate legitimately differs. So: exactly the
    same channels without an estimate (decided by comparisons of the samples);
    on every channel a finite, non-negative density whose peak count is exactly
    count_peaks of that density; and densities within 1e-6 relative (peak counts
    equal) on all but ``max_flipped`` of the channels."""
    d, p = d.cpu(), p.cpu()
    assert d.shape == d0.shape and p.shape == p0.shape and p.dtype == torch.long
    none0 = (d0 == 0).all(-1)
    assert torch.equal((d == 0).all(-1), none0) and (p[none0] == 0).all()
    assert torch.isfinite(d).all() and (d >= 0).all()
    assert torch.equal(p, ref.count_peaks(d))
    scale = d0.abs().amax(-1).clamp(min=1e-300)
    close = ((d - d0).abs().amax(-1) <= 1e-6 * scale) & (p == p0)
    assert (~close).float().mean() <= max_flipped, (~close).nonzero().flatten().tolist()


def test_gpu_agreement_rule_on_the_cpp_kernel():
    # The rule the CUDA tests apply, checked here: the C++ kernel passes it, and
    # it fails a density changed on more than max_flipped of the channels or a
    # peak count that is not the density's own.
    from fastcam.kernels import cpp as kcpu
    x = _adaptive_kde_samples(n=40, S=30)
    d, p = kcpu.adaptive_kde(x)
    d0, p0 = ref.adaptive_kde(x)
    _assert_gpu_adaptive_kde_agrees(d, p, d0, p0)
    bad = d.clone()
    bad[10:14] *= 1.01                                # 10% of the channels off by 1%
    with pytest.raises(AssertionError):
        _assert_gpu_adaptive_kde_agrees(bad, p, d0, p0)
    wrong = p.clone()
    wrong[0] += 1
    with pytest.raises(AssertionError):
        _assert_gpu_adaptive_kde_agrees(d, wrong, d0, p0)


@needs_gpu
@pytest.mark.parametrize("S,Z", [(49, None), (49, 20), (30, 49), (196, None), (100, 169)])
def test_adaptive_kde_cuda_matches_reference(S, Z):
    from fastcam.kernels import cuda as kcuda
    x = _adaptive_kde_samples(S=S)
    d, p = kcuda.adaptive_kde(x.cuda(), Z)
    torch.cuda.synchronize()
    assert d.device.type == "cuda" and d.dtype == torch.float64 and p.dtype == torch.long
    d0, p0 = ref.adaptive_kde(x, Z)
    _assert_gpu_adaptive_kde_agrees(d, p, d0, p0)


@needs_gpu
def test_adaptive_kde_cuda_matches_cpu_kernel_and_float32_input():
    from fastcam.kernels import cpp as kcpu
    from fastcam.kernels import cuda as kcuda

    x = _adaptive_kde_samples(n=300, S=64, seed=3)
    d, p = kcuda.adaptive_kde(x.cuda())
    dc, pc = kcpu.adaptive_kde(x)
    _assert_gpu_adaptive_kde_agrees(d, p, dc, pc)
    x32 = x.float()
    d, p = kcuda.adaptive_kde(x32.cuda(), 40)
    dc, pc = kcpu.adaptive_kde(x32, 40)
    _assert_gpu_adaptive_kde_agrees(d, p, dc, pc)



@needs_gpu
def test_adaptive_kde_cuda_empty_and_bad_arguments():
    from fastcam.kernels import cuda as kcuda

    d, p = kcuda.adaptive_kde(torch.rand(0, 10, device="cuda"))
    assert d.shape == (0, 10) and p.shape == (0,)
    d, p = kcuda.adaptive_kde(torch.full((3, 10), 5.0, device="cuda"))  # no estimate
    assert (d == 0).all() and (p == 0).all()
    with fastcam.use_backend("cuda"):  # the checks are the op's (test_op_checks_the_grid_once)
        with pytest.raises(ValueError):
            adaptive_kde_op(torch.rand(3, 10, device="cuda"), grid_size=1)
        with pytest.raises(RuntimeError):  # CPU tensor
            adaptive_kde_op(torch.rand(3, 10), grid_size=10)
    torch.cuda.synchronize()  # no asynchronous error was left behind


@needs_gpu
def test_adaptive_kde_cuda_through_op_on_side_stream():
    import fastcam
    from fastcam.ops.adaptive_kde import adaptive_kde

    x = _adaptive_kde_samples(n=24, S=49, seed=5).reshape(2, 12, 49)
    xg = x.cuda()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with fastcam.use_backend("cuda"), torch.cuda.stream(side):
        d, p = adaptive_kde(xg, grid_size=36)
    torch.cuda.synchronize()
    assert d.shape == (2, 12, 36) and p.shape == (2, 12) and d.is_cuda
    d0, p0 = ref.adaptive_kde(x.reshape(24, 49), 36)
    _assert_gpu_adaptive_kde_agrees(d.reshape(24, 36), p.reshape(24), d0, p0)
