"""The CUDA part of fastcam._C: what was compiled (device code for sm_80 and
sm_90), that it fails cleanly without a GPU, and, where a GPU is available, the
CUDA kernels against the reference."""
from __future__ import annotations

import glob
import itertools
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from fastcam._ext import extension_available, load_extension
from fastcam.kernels import reference as ref

pytestmark = pytest.mark.skipif(not extension_available(), reason="fastcam._C is not built")


def _C():
    return load_extension()


def _cuda_compiled() -> bool:
    return extension_available() and bool(_C().cuda_compiled)


needs_cuda_build = pytest.mark.skipif(not _cuda_compiled(), reason="built without CUDA")


def _no_gpu() -> bool:
    # torch (even a CPU-only build) sees no GPU and there is no NVIDIA device node.
    return not torch.cuda.is_available() and not glob.glob("/dev/nvidia[0-9]*")


def _find_cuobjdump() -> str | None:
    candidates = ["/usr/local/cuda/bin/cuobjdump", shutil.which("cuobjdump")]
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            candidates.append(os.path.join(os.environ[var], "bin", "cuobjdump"))
    try:  # triton's wheel ships one
        import triton

        candidates.append(os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia",
                                       "bin", "cuobjdump"))
    except ImportError:
        pass
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


# --- (a) what the build contains ---------------------------------------------


@needs_cuda_build
def test_cuda_architectures_attribute():
    assert _C().cuda_architectures == "80;90"


@needs_cuda_build
def test_device_code_for_sm80_and_sm90():
    tool = _find_cuobjdump()
    if tool is None:
        pytest.skip("cuobjdump not found (/usr/local/cuda/bin, PATH, CUDA_HOME, triton)")
    so = _C().__file__
    elf = subprocess.run([tool, "--list-elf", so], capture_output=True, text=True, check=True)
    archs = set(re.findall(r"\.(sm_\d+)\.cubin", elf.stdout))
    assert {"sm_80", "sm_90"} <= archs, elf.stdout
    # PTX too, so GPUs newer than sm_90 can JIT-compile the kernels.
    ptx = subprocess.run([tool, "--list-ptx", so], capture_output=True, text=True, check=True)
    assert "sm_90" in set(re.findall(r"\.(sm_\d+)\.ptx", ptx.stdout)), ptx.stdout


# --- (b) no GPU: clean errors, never a crash ------------------------------------


@needs_cuda_build
@pytest.mark.skipif(not _no_gpu(), reason="a GPU is present")
def test_device_count_is_zero_without_gpu():
    assert _C().cuda_device_count() == 0


_CALL_WITHOUT_GPU = textwrap.dedent("""
    import fastcam._C as C
    for name, args in [
        ("cam_combine_forward_cuda",
         (0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, True, True, False, 0, "float32")),
        ("cam_combine_backward_cuda",
         (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, True, True, False, 0, "float64")),
    ]:
        try:
            getattr(C, name)(*args)
        except RuntimeError as e:
            print(name, "RuntimeError:", e)
        else:
            print(name, "returned")
    print("still alive")
""")


@needs_cuda_build
@pytest.mark.skipif(not _no_gpu(), reason="a GPU is present")
def test_cuda_call_without_gpu_raises_runtime_error():
    # In a subprocess: a crash (abort, segfault) must show as a failed test, not
    # take pytest down.
    p = subprocess.run([sys.executable, "-c", _CALL_WITHOUT_GPU], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    lines = p.stdout.splitlines()
    assert lines[-1] == "still alive", p.stdout
    for name in ("cam_combine_forward_cuda", "cam_combine_backward_cuda"):
        line = next(x for x in lines if x.startswith(name))
        assert "RuntimeError: fastcam CUDA kernels: no usable CUDA device" in line, line


# --- (c) on a GPU: the CUDA kernels against the reference ----------------------

needs_gpu = pytest.mark.skipif(not (_cuda_compiled() and torch.cuda.is_available()),
                               reason="needs a CUDA GPU and a build with CUDA kernels")

# (B, G, K, h, w, H, W): ResNet-like 7x7 -> 224, odd sizes, G > 1, low-res
# sizes of 1 and 2, downsampling, identity, a low-res map too big for shared
# memory (float64), and a single output pixel.
SHAPES = [
    (2, 1, 64, 7, 7, 224, 224),
    (3, 4, 6, 5, 6, 17, 13),
    (1, 2, 3, 2, 2, 8, 8),
    (1, 3, 5, 1, 4, 6, 9),
    (2, 2, 4, 9, 7, 5, 4),
    (1, 1, 3, 4, 4, 4, 4),
    (1, 1, 3, 90, 80, 23, 31),
    (2, 3, 4, 6, 5, 1, 1),
]
FLAGS = list(itertools.product([True, False], [True, False], [False, True]))


def _inputs(shape, dtype, device="cuda"):
    B, G, K, h, w, H, W = shape
    A = torch.randn(B, K, h, w, dtype=dtype, device=device)
    wt = torch.randn(B, G, K, dtype=dtype, device=device)
    go = torch.randn(B, G, H, W, dtype=dtype, device=device)
    return A, wt, go


@needs_gpu
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("relu,normalize,align_corners", FLAGS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_matches_reference(shape, relu, normalize, align_corners, dtype):
    from fastcam.kernels import cuda as kcuda

    B, G, K, h, w, H, W = shape
    A, wt, go = _inputs(shape, dtype)
    out, s, stats = kcuda.cam_combine_forward(A, wt, H, W, relu, normalize, align_corners)
    torch.cuda.synchronize()
    # The reference in float64 from the same inputs.
    r_out, r_s, r_stats = ref.cam_combine_with_stats(A.double(), wt.double(), (H, W), relu,
                                                     normalize, align_corners)
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s.double(), r_s, **tol)
    torch.testing.assert_close(stats.double(), r_stats, **tol)
    torch.testing.assert_close(out.double(), r_out, **tol)
    if normalize:  # the maximum of every non-constant map is exactly 1
        assert ((out == 1).flatten(2).any(-1) | (stats[..., 1] == 0)).all()

    gA, gw = kcuda.cam_combine_backward(go, out, A, wt, s, stats, relu, normalize,
                                        align_corners)
    torch.cuda.synchronize()
    r_gA, r_gw = ref.cam_combine_backward(go.double(), A.double(), wt.double(), (H, W), relu,
                                          normalize, align_corners)
    g_tol = tol if dtype == torch.float64 else dict(rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(gA.double(), r_gA, **g_tol)
    torch.testing.assert_close(gw.double(), r_gw, **g_tol)


@needs_gpu
def test_cuda_matches_cpu_kernels():
    from fastcam.kernels import cpu as kcpu
    from fastcam.kernels import cuda as kcuda

    A, wt, go = _inputs((3, 2, 32, 7, 7, 64, 48), torch.float64)
    flags = (True, True, False)
    o, s, st = kcuda.cam_combine_forward(A, wt, 64, 48, *flags)
    gA, gw = kcuda.cam_combine_backward(go, o, A, wt, s, st, *flags)
    Ac, wc, gc = A.cpu(), wt.cpu(), go.cpu()
    oc, sc, stc = kcpu.cam_combine_forward(Ac, wc, 64, 48, *flags)
    gAc, gwc = kcpu.cam_combine_backward(gc, oc, Ac, wc, sc, stc, *flags)
    for x, y in [(o, oc), (s, sc), (st, stc), (gA, gAc), (gw, gwc)]:
        torch.testing.assert_close(x.cpu(), y, rtol=1e-10, atol=1e-12)


@needs_gpu
def test_constant_map_is_zero_with_zero_gradient():
    from fastcam.kernels import cuda as kcuda

    A = torch.ones(2, 3, 4, 4, dtype=torch.float64, device="cuda")
    wt = torch.ones(2, 1, 3, dtype=torch.float64, device="cuda")
    out, s, st = kcuda.cam_combine_forward(A, wt, 9, 9, True, True, False)
    assert (out == 0).all() and (st[..., 1] == 0).all()
    gA, gw = kcuda.cam_combine_backward(torch.randn_like(out), out, A, wt, s, st, True, True,
                                        False)
    assert (gA == 0).all() and (gw == 0).all()


@needs_gpu
def test_cuda_backend_through_op_on_side_stream():
    import fastcam
    from fastcam.ops.cam_combine import cam_combine

    A, wt, _ = _inputs((2, 3, 16, 7, 7, 33, 29), torch.float32)
    A.requires_grad_(True)
    wt.requires_grad_(True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with fastcam.use_backend("cuda"), torch.cuda.stream(side):
        out = cam_combine(A, wt, (33, 29))
        out.square().sum().backward()
    torch.cuda.synchronize()
    A_ = A.detach().double().requires_grad_(True)
    w_ = wt.detach().double().requires_grad_(True)
    r = ref.cam_combine(A_, w_, (33, 29))
    r.square().sum().backward()
    torch.testing.assert_close(out.double(), r, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(A.grad.double(), A_.grad, rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(wt.grad.double(), w_.grad, rtol=2e-3, atol=2e-3)
