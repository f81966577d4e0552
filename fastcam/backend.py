"""Which kernel runs an op: chosen per call from the tensor's device and the
process-wide setting (``fastcam.set_backend`` or the FASTCAM_BACKEND variable).

- ``"auto"`` (default): CPU -> C++/OpenMP (``"cpp"``); CUDA -> Triton if it is
  importable, else the CUDA kernels of fastcam._C, else the reference.
- ``"reference"``: eager torch (every device).
- ``"cpp"`` (CPU tensors), ``"cuda"`` (CUDA tensors), ``"triton"`` (CUDA
  tensors, or CPU tensors when TRITON_INTERPRET=1 is set).
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Iterator

import torch

from ._ext import cuda_kernels_compiled, extension_available

BACKENDS = ("auto", "reference", "cpp", "triton", "cuda")
_current = os.environ.get("FASTCAM_BACKEND", "auto").lower()
if _current not in BACKENDS:
    raise ValueError(f"FASTCAM_BACKEND={_current!r}: expected one of {BACKENDS}")


def set_backend(name: str) -> None:
    """Set the kernel backend for every later op call (see the module docstring)."""
    global _current
    name = name.lower()
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: expected one of {BACKENDS}")
    _current = name


def get_backend() -> str:
    return _current


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Context manager form of :func:`set_backend`; restores the previous one."""
    previous = _current
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve(device: torch.device) -> str:
    """The backend that runs an op on tensors of ``device``; raises if the chosen
    backend cannot run there."""
    name = _current
    if name == "auto":
        if device.type == "cpu":
            return "cpp" if extension_available() else "reference"
        if device.type == "cuda":
            if triton_available():
                return "triton"
            return "cuda" if cuda_kernels_compiled() else "reference"
        return "reference"
    if name == "cpp" and device.type != "cpu":
        raise RuntimeError(f"backend 'cpp' runs CPU tensors only, got a {device.type} tensor")
    if name == "cuda":
        if device.type != "cuda":
            raise RuntimeError(f"backend 'cuda' runs CUDA tensors only, got a {device.type} tensor")
        if not cuda_kernels_compiled():
            raise RuntimeError("backend 'cuda': this build of fastcam._C has no CUDA kernels "
                               "(rebuild with nvcc available, FASTCAM_CUDA=ON)")
    if name == "triton":
        if not triton_available():
            raise RuntimeError("backend 'triton': triton is not installed")
        if device.type == "cpu" and not triton_interpreting():
            raise RuntimeError("backend 'triton' runs CPU tensors only under TRITON_INTERPRET=1")
        if device.type not in ("cpu", "cuda"):
            raise RuntimeError(f"backend 'triton' cannot run {device.type} tensors")
    return name
