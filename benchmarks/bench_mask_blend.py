"""mask_blend (Score-CAM's ``X ∘ H_k`` chunks, normalised for the model): the
C++/OpenMP kernel vs the eager reference, and the memory floor (writing the
output once at this machine's copy bandwidth)."""
import pytest
import torch

from fastcam.kernels import cpp, reference

from conftest import SMOKE

CASES = {  # B, C, H, W, h, w, n maps, with a baseline
    "B1-n64-7to224": (1, 3, 224, 224, 7, 7, 64, False),
    "B2-n64-14to224-baseline": (2, 3, 224, 224, 14, 14, 64, True),
}
if SMOKE:
    CASES = {"smoke": (2, 3, 16, 16, 3, 3, 4, True)}


def _inputs(case):
    B, C, H, W, h, w, n, with_baseline = CASES[case]
    x = torch.rand(B, C, H, W)
    maps = torch.randn(n, h, w)
    index = torch.arange(n) % B
    baseline = torch.rand(B, C, H, W) if with_baseline else None
    mean, std = torch.rand(C), torch.rand(C) + 0.2
    return x, maps, index, baseline, mean, std


@pytest.mark.parametrize("case", list(CASES))
def test_reference(benchmark, case):
    x, maps, index, baseline, mean, std = _inputs(case)
    benchmark.group = f"mask_blend {case}"
    benchmark.extra_info["baseline"] = True
    benchmark(reference.mask_blend, x, maps, index, baseline, mean, std, 1e-8, False)


@pytest.mark.parametrize("case", list(CASES))
def test_cpp(benchmark, case):
    x, maps, index, baseline, mean, std = _inputs(case)
    benchmark.group = f"mask_blend {case}"
    out = benchmark(cpp.mask_blend, x, maps, index, baseline, mean, 1 / std, 1e-8, False)
    ref = reference.mask_blend(x, maps, index, baseline, mean, std, 1e-8, False)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_memory_floor(benchmark, case):
    """Output bytes written once: a copy of an output-sized buffer."""
    x, maps, *_ = _inputs(case)
    src = torch.rand(maps.shape[0], *x.shape[1:])
    dst = torch.empty_like(src)
    benchmark.group = f"mask_blend {case}"
    benchmark.extra_info["note"] = f"copy of {src.numel() * 4 / 2**20:.1f} MiB"
    benchmark(dst.copy_, src)
