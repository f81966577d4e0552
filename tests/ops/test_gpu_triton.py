"""Compiled Triton on a GPU: every op's parity harness (tests/ops/test_<op>.py::
test_parity: dtypes x layouts x every shape, 1x1 and 1-row maps, a single output
pixel and batch 1 with large K included) run again in a subprocess without
TRITON_INTERPRET, so that the triton backend's kernels are JIT-compiled for this
GPU (autotuned) and run on CUDA tensors against the eager reference. Skipped
without a GPU; the harness plumbing is checked here under the interpreter."""
import importlib

import pytest
import torch

from _compiled_parity import run_triton_parity

OPS = ["cam_combine", "mask_blend", "rank_reveal", "adaptive_kde"]
CASES = {"adaptive_kde": ["one", "mixed", "batched"]}  # its harness names them inline


def _has_triton() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _case_names(op: str) -> list[str]:
    if op in CASES:
        return CASES[op]
    return list(importlib.import_module(f"test_{op}").PARITY_CASES)


@pytest.mark.skipif(not (torch.cuda.is_available() and _has_triton()),
                    reason="needs a CUDA GPU and triton")
@pytest.mark.parametrize("op", OPS)
def test_compiled_triton_parity_on_gpu(op, tmp_path):
    r = run_triton_parity(op, tmp_path, interpret=False)
    assert r["rc"] == 0, r["output"]
    assert r["tests"] > 0 and r["skipped"] == 0 and r["failures"] == r["errors"] == 0, r
    for case in _case_names(op):  # every shape of the harness ran, compiled
        assert any(t.endswith(f"-{case}]") for t in r["passed"]), (case, r)


@pytest.mark.skipif(not _has_triton(), reason="needs triton")
def test_parity_subprocess_reports_what_ran(tmp_path):
    # The same plumbing under the interpreter on CPU tensors, one small shape.
    r = run_triton_parity("cam_combine", tmp_path, interpret=True,
                          select="map1x1 and contiguous and not non")
    assert r["rc"] == 0, r["output"]
    assert r["tests"] == 2 and r["skipped"] == 0 and len(r["passed"]) == 2, r
    assert all(t.startswith("test_parity[triton-") and t.endswith("-map1x1]")
               for t in r["passed"])


@pytest.mark.skipif(not (torch.cuda.is_available() and _has_triton()),
                    reason="needs a CUDA GPU and triton")
def test_cam_combine_map_above_the_2d_grid_limit_on_gpu():
    # 4.4 M low-res pixels: with 64-pixel tiles on grid axis 1 this exceeded
    # CUDA's 65,535 limit; the kernels' grids are 1-D now.
    import fastcam
    from fastcam.kernels import reference

    fastcam.set_backend("triton")
    A = torch.randn(1, 2, 2100, 2100, device="cuda", requires_grad=True)
    w = torch.randn(1, 2, device="cuda", requires_grad=True)
    out = fastcam.ops.cam_combine(A, w, (2100, 2100))
    g = torch.randn_like(out)
    gA, gw = torch.autograd.grad(out, (A, w), g)
    rA, rw = A.detach().double().requires_grad_(True), w.detach().double().requires_grad_(True)
    r = reference.cam_combine(rA, rw, (2100, 2100))
    r_gA, r_gw = torch.autograd.grad(r, (rA, rw), g.double())
    torch.testing.assert_close(out.double(), r, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gA.double(), r_gA, rtol=1e-3, atol=1e-3 * r_gA.abs().max().item())
    torch.testing.assert_close(gw.double(), r_gw, rtol=1e-3, atol=1e-3 * r_gw.abs().max().item())
