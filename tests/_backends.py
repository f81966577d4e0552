"""The compiled backends each op's parity harness runs, as pytest parameters:
``cpp`` (CPU tensors), ``triton`` (CPU tensors under TRITON_INTERPRET=1, which
conftest.py sets; CUDA tensors otherwise) and ``cuda`` (CUDA tensors), each
skipped where it cannot run."""
import importlib
import os

import pytest
import torch

from fastcam._ext import cuda_kernels_compiled, extension_available

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


def triton_module(op: str):
    """fastcam.kernels.triton.<op>, the module (the package attribute of that name
    is the kernel function), or None without triton (its tests are skipped)."""
    return importlib.import_module(f"fastcam.kernels.triton.{op}") if _has_triton() else None


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
