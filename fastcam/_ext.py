"""Loads the compiled module fastcam._C once, with a clear error when it is missing."""
from __future__ import annotations

import functools
import warnings
from types import ModuleType

#: said once per process when fastcam._C is missing
NO_EXTENSION = ("fastcam: the compiled module fastcam._C is not installed (a pure-Python install: "
                "FASTCAM_BUILD_EXT=0, or no C++ compiler at install time); CPU ops run on the "
                "'reference' backend (eager PyTorch), CUDA ops on Triton or the reference")


@functools.lru_cache(maxsize=None)
def load_extension() -> ModuleType:
    try:
        from . import _C
    except ImportError as e:
        raise ImportError(
            "fastcam's compiled module fastcam._C is not built. Install the package with "
            "`pip install .` (or `pip install -e .`) from the source tree with a C++17 compiler, "
            "which builds it with CMake; the 'reference' backend works without it "
            "(fastcam.set_backend('reference'))."
        ) from e
    return _C


@functools.lru_cache(maxsize=None)
def extension_available() -> bool:
    """Whether fastcam._C imports; when not, warns once (:data:`NO_EXTENSION`)."""
    try:
        load_extension()
    except ImportError:
        warnings.warn(NO_EXTENSION, RuntimeWarning, stacklevel=2)
        return False
    return True


def cuda_kernels_compiled() -> bool:
    """Whether this build of fastcam._C contains the CUDA kernels."""
    return extension_available() and bool(load_extension().cuda_compiled)
