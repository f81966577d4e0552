"""cam_combine forward and backward: C++/OpenMP vs the eager reference, and the
memory floor (writing the output once at this machine's copy bandwidth)."""
import pytest
import torch

from fastcam.kernels import cpp, reference

from conftest import SMOKE

CASES = {  # B, K, h, w, H, W
    "B32-K2048-7to224": (32, 2048, 7, 7, 224, 224),
    "B32-K512-14to224": (32, 512, 14, 14, 224, 224),
}
if SMOKE:
    CASES = {"smoke": (2, 16, 7, 7, 32, 32)}


def _inputs(case):
    B, K, h, w, H, W = CASES[case]
    A = torch.randn(B, K, h, w)
    wt = torch.randn(B, 1, K)
    return A, wt, H, W


@pytest.mark.parametrize("case", list(CASES))
def test_forward_reference(benchmark, case):
    A, wt, H, W = _inputs(case)
    benchmark.group = f"cam_combine forward {case}"
    benchmark.extra_info["baseline"] = True
    with torch.no_grad():
        benchmark(reference.cam_combine_forward, A, wt, H, W, True, True, False)


@pytest.mark.parametrize("case", list(CASES))
def test_forward_cpp(benchmark, case):
    A, wt, H, W = _inputs(case)
    benchmark.group = f"cam_combine forward {case}"
    out = benchmark(cpp.cam_combine_forward, A, wt, H, W, True, True, False)[0]
    ref = reference.cam_combine_forward(A, wt, H, W, True, True, False)[0]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("case", list(CASES))
def test_forward_memory_floor(benchmark, case):
    """Output bytes written once: a copy of an output-sized buffer."""
    A, wt, H, W = _inputs(case)
    src = torch.rand(A.shape[0], 1, H, W)
    dst = torch.empty_like(src)
    benchmark.group = f"cam_combine forward {case}"
    benchmark.extra_info["note"] = f"copy of {src.numel() * 4 / 2**20:.1f} MiB"
    benchmark(dst.copy_, src)


@pytest.mark.parametrize("case", list(CASES))
def test_backward_reference(benchmark, case):
    A, wt, H, W = _inputs(case)
    g = torch.randn(A.shape[0], 1, H, W)
    with torch.no_grad():
        out, s, stats = reference.cam_combine_forward(A, wt, H, W, True, True, False)
    benchmark.group = f"cam_combine backward {case}"
    benchmark.extra_info["baseline"] = True
    benchmark(reference.cam_combine_backward, g, out, A, wt, s, stats, True, True, False)


@pytest.mark.parametrize("case", list(CASES))
def test_backward_cpp(benchmark, case):
    A, wt, H, W = _inputs(case)
    g = torch.randn(A.shape[0], 1, H, W)
    out, s, stats = cpp.cam_combine_forward(A, wt, H, W, True, True, False)
    benchmark.group = f"cam_combine backward {case}"
    benchmark(cpp.cam_combine_backward, g, out, A, wt, s, stats, True, True, False)
