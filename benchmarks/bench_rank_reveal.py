"""rank_reveal (insertion/deletion chunks: pixels revealed in saliency order,
normalised for the model): the C++/OpenMP kernel vs the eager reference, and
the memory floor (writing the output once at this machine's copy bandwidth)."""
import pytest
import torch

from fastcam.kernels import cpp, reference

from conftest import SMOKE

CASES = {  # B, C, H, W, n copies, which of src/dst (deletion: dst only; insertion: both)
    "deletion-B1-n64-224": (1, 3, 224, 224, 64, "dst"),
    "insertion-B2-n64-224": (2, 3, 224, 224, 64, "both"),
}
if SMOKE:
    CASES = {"smoke": (2, 3, 16, 16, 4, "both")}


def _inputs(case):
    B, C, H, W, n, which = CASES[case]
    HW = H * W
    rank = torch.stack([torch.randperm(HW) for _ in range(B)])
    counts = torch.linspace(0, HW, n).long()
    index = torch.arange(n) % B
    x = torch.rand(B, C, H, W)
    src = x if which == "both" else None
    dst = torch.rand(B, C, H, W) if which == "both" else x
    mean, std = torch.rand(C), torch.rand(C) + 0.2
    return rank, counts, index, src, dst, mean, std


@pytest.mark.parametrize("case", list(CASES))
def test_reference(benchmark, case):
    rank, counts, index, src, dst, mean, std = _inputs(case)
    benchmark.group = f"rank_reveal {case}"
    benchmark.extra_info["baseline"] = True
    benchmark(reference.rank_reveal, rank, counts, index, src, dst, mean, std)


@pytest.mark.parametrize("case", list(CASES))
def test_cpp(benchmark, case):
    rank, counts, index, src, dst, mean, std = _inputs(case)
    benchmark.group = f"rank_reveal {case}"
    out = benchmark(cpp.rank_reveal, rank, counts, index, src, dst, mean, 1 / std)
    ref = reference.rank_reveal(rank, counts, index, src, dst, mean, std)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_memory_floor(benchmark, case):
    """Output bytes written once: a copy of an output-sized buffer."""
    rank, counts, index, src, dst, *_ = _inputs(case)
    ref = src if src is not None else dst
    out = torch.rand(index.numel(), *ref.shape[1:])
    dst_buf = torch.empty_like(out)
    benchmark.group = f"rank_reveal {case}"
    benchmark.extra_info["note"] = f"copy of {out.numel() * 4 / 2**20:.1f} MiB"
    benchmark(dst_buf.copy_, out)
