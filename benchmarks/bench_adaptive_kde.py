"""adaptive_kde on CPU (ADVISE's hot loop: one locally adaptive KDE per channel):
fastcam's C++/OpenMP kernel vs what a user writes today — the PyPI package
adaptivekde's ssvkernel looped over the channels — and vs fastcam's eager torch
reference, at B·K = 8×2048 channels of 7×7 = 49 values (Z = 49) and 8×512
channels of 14×14 = 196 values (Z = 196).

Samples are activation-like: ReLU of Gaussian noise, min-max normalised per
channel (so every channel spans [0, 1] and the three agree). The per-channel
loop takes about 0.2 s (Z = 49) to 1 s (Z = 196) per channel, so it is timed on
a subset of channels and scaled to the full count (said in each row's note);
the torch reference and the C++ kernel run the whole batch.
"""
import warnings

import numpy as np
import pytest
import torch

from fastcam.kernels import cpp, reference

from conftest import SMOKE

CASES = {  # name: (channels B·K, Z), channels timed in the per-channel loop
    "BK8x2048-Z49": (8 * 2048, 49, 16),
    "BK8x512-Z196": (8 * 512, 196, 8),
}
if SMOKE:
    CASES = {"smoke-Z49": (32, 49, 2), "smoke-Z196": (8, 196, 1)}


def _samples(case):
    N, Z, _ = CASES[case]
    g = torch.Generator().manual_seed(0)
    a = torch.relu(torch.randn(N, Z, generator=g, dtype=torch.float64) + 0.3)
    lo, hi = a.amin(1, keepdim=True), a.amax(1, keepdim=True)
    return (a - lo) / (hi - lo)


def _scale(benchmark, factor):
    """Per-channel timing of a subset -> the time for all channels."""
    if getattr(benchmark, "disabled", False) or benchmark.stats is None:
        return                                  # --benchmark-disable: nothing was timed
    data = benchmark.stats.stats.data
    data[:] = [v * factor for v in data]
    for k in list(vars(benchmark.stats.stats)):
        if k != "data":                       # drop cached statistics, if any
            delattr(benchmark.stats.stats, k)


def _loop(benchmark, case, nbs):
    akde = pytest.importorskip("adaptivekde.ssvkernel")
    N, Z, n_sub = CASES[case]
    x = _samples(case)[:n_sub].numpy()
    tin = np.linspace(0, 1, Z)

    def run():
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the port's bootstrap warns at times
            for row in x:
                kw = {} if nbs is None else {"nbs": nbs}
                y = akde.ssvkernel(row, tin=tin, M=10, WinFunc="Gauss", **kw)[0]
                out.append((y, int(np.sum((y[1:-1] > y[:-2]) & (y[1:-1] > y[2:])))))
        return out

    out = benchmark.pedantic(run, rounds=1, iterations=1)
    _scale(benchmark, N / n_sub)
    d, _ = cpp.adaptive_kde(torch.from_numpy(x), Z)        # sanity: same densities
    torch.testing.assert_close(d, torch.from_numpy(np.stack([y for y, _ in out])),
                               rtol=1e-6, atol=1e-12)
    return n_sub, N


@pytest.mark.parametrize("case", list(CASES))
def test_adaptivekde_loop(benchmark, case):
    benchmark.group = f"adaptive_kde {case}: vs per-channel adaptivekde loop"
    benchmark.extra_info["baseline"] = True
    n_sub, N = _loop(benchmark, case, None)
    benchmark.extra_info["note"] = (f"ssvkernel(x, tin, M=10, WinFunc='Gauss') per channel; "
                                    f"{n_sub} channels timed, scaled x{N // n_sub}")


@pytest.mark.parametrize("case", list(CASES))
def test_adaptivekde_loop_no_bootstrap(benchmark, case):
    benchmark.group = f"adaptive_kde {case}: vs per-channel adaptivekde loop"
    n_sub, N = _loop(benchmark, case, 1)
    benchmark.extra_info["note"] = (f"same with nbs=1 (no bootstrap bands); {n_sub} channels "
                                    f"timed, scaled x{N // n_sub}")


@pytest.mark.parametrize("case", list(CASES))
def test_fastcam_cpp_vs_loop(benchmark, case):
    x = _samples(case)
    benchmark.group = f"adaptive_kde {case}: vs per-channel adaptivekde loop"
    benchmark.extra_info["note"] = f"{torch.get_num_threads()} threads, all {len(x)} channels"
    benchmark.pedantic(cpp.adaptive_kde, args=(x,), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("case", list(CASES))
def test_reference(benchmark, case):
    x = _samples(case)
    benchmark.group = f"adaptive_kde {case}: vs torch reference"
    benchmark.extra_info["baseline"] = True
    benchmark.extra_info["note"] = "eager torch float64, batched, one run"
    benchmark.pedantic(reference.adaptive_kde, args=(x,), rounds=1, iterations=1)


@pytest.mark.parametrize("case", list(CASES))
def test_fastcam_cpp_vs_reference(benchmark, case):
    x = _samples(case)
    benchmark.group = f"adaptive_kde {case}: vs torch reference"
    benchmark.extra_info["note"] = f"{torch.get_num_threads()} threads"
    d, p = benchmark.pedantic(cpp.adaptive_kde, args=(x,), rounds=3, iterations=1,
                              warmup_rounds=1)
    n = min(len(x), 256)                   # spot check against the reference
    d0, p0 = reference.adaptive_kde(x[:n])
    torch.testing.assert_close(d[:n], d0, rtol=1e-9, atol=1e-12)
    assert torch.equal(p[:n], p0)
