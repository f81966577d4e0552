"""What every op's parity harness (tests/ops/test_<op>.py) shares.

- The compiled backends, as pytest parameters: ``cpp`` (CPU tensors),
  ``triton`` (CPU tensors under TRITON_INTERPRET=1, which tests/conftest.py
  sets; CUDA tensors otherwise) and ``cuda`` (CUDA tensors), each skipped where
  it cannot run; the device each runs on; each backend's kernel module of an op.
- The memory layouts the inputs are handed over in, and the dtypes.
- The model-input normalisation constants and random ones.
- A spy on the kernel function an op dispatches to, and the check of what the op
  handed it.
"""
import importlib
import os

import pytest
import torch

from fastcam._ext import cuda_kernels_compiled, extension_available

F32, F64 = torch.float32, torch.float64

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
HAS_GPU = torch.cuda.is_available()


def _has_triton() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


needs_cpp = pytest.mark.skipif(not extension_available(), reason="fastcam._C is not built")
needs_triton = pytest.mark.skipif(not (_has_triton() and (INTERPRET or HAS_GPU)),
                                  reason="needs triton and TRITON_INTERPRET=1 or a GPU")
triton_interp = pytest.mark.skipif(not (_has_triton() and INTERPRET),
                                   reason="needs TRITON_INTERPRET=1 before import (conftest.py)")
needs_gpu = pytest.mark.skipif(not (cuda_kernels_compiled() and HAS_GPU),
                               reason="needs a CUDA GPU and a build with CUDA kernels")

BACKENDS = [pytest.param("cpp", marks=needs_cpp), pytest.param("triton", marks=needs_triton),
            pytest.param("cuda", marks=needs_gpu)]


def device_of(backend: str) -> str:
    """The device of the tensors ``backend`` runs here."""
    if backend == "cpp" or (backend == "triton" and INTERPRET):
        return "cpu"
    return "cuda"


def kernel_module(backend: str, op: str):
    """``fastcam.kernels.<backend>.<op>``, the module: the backend package's
    attribute of that name is the op's function, not the module."""
    return importlib.import_module(f"fastcam.kernels.{backend}.{op}")


def triton_module(op: str):
    """fastcam.kernels.triton.<op>, the module, or None without triton (its tests
    are skipped)."""
    return kernel_module("triton", op) if _has_triton() else None


# ----------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------
LAYOUTS = ["contiguous", "noncontiguous", "channels_last"]


def in_layout(t, layout: str):
    """``t`` (None passes) with the same values in ``layout``: channels_last for a
    4-D tensor (others unchanged), or every other element of a buffer."""
    if t is None or layout == "contiguous":
        return t
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
    out = torch.stack([t, -t], -1)[..., 0]
    assert not out.is_contiguous() or out.numel() <= 1
    return out


def moved(tensors, device, layout: str) -> list:
    """Each tensor (or None) on ``device`` in ``layout``: what a harness hands the op."""
    return [in_layout(None if t is None else t.to(device), layout) for t in tensors]


def imagenet_like_norm():
    """Fixed per-channel (mean, std) of 3-channel model inputs."""
    return torch.tensor([0.4, 0.5, 0.6]), torch.tensor([0.2, 0.3, 0.25])


def random_norm(C: int, dtype, norm: bool):
    """Random per-channel (mean, std), std ≥ 0.5, or (None, None)."""
    if not norm:
        return None, None
    return torch.randn(C, dtype=dtype), torch.rand(C, dtype=dtype) + 0.5


def tol(dtype) -> dict:
    """Kernel vs reference on the same inputs (no accumulation over channels)."""
    return dict(atol=1e-5, rtol=1e-5) if dtype == F32 else dict(atol=1e-12, rtol=1e-12)


# ----------------------------------------------------------------------------
# What the op hands its kernel
# ----------------------------------------------------------------------------
def spy(monkeypatch, backend: str, op: str) -> list:
    """Record every call of ``backend``'s kernel function ``op`` (the one the op
    dispatches to) as the list of its arguments."""
    from fastcam.ops._dispatch import _MODULES

    module = importlib.import_module(_MODULES[backend])
    fn = getattr(module, op)
    calls = []

    def wrapped(*args):
        calls.append(args)
        return fn(*args)

    monkeypatch.setattr(module, op, wrapped)
    return calls


def assert_kernel_inputs(args, device, dtype) -> None:
    """What the op handed a kernel: contiguous tensors on ``device``, the
    floating-point ones all of ``dtype``."""
    tensors = [t for t in args if isinstance(t, torch.Tensor)]
    assert all(t.is_contiguous() and t.device == device for t in tensors)
    assert all(t.dtype == dtype for t in tensors if t.is_floating_point())
