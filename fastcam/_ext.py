"""Loads the compiled module fastcam._C once, with a clear error when it is missing."""
from __future__ import annotations

import functools
from types import ModuleType


@functools.lru_cache(maxsize=None)
def load_extension() -> ModuleType:
    try:
        from . import _C
    except ImportError as e:
        raise ImportError(
            "fastcam's compiled module fastcam._C is not built. Install the package with "
            "`pip install .` (or `pip install -e .`) from the source tree, which builds it "
            "with CMake; the 'reference' backend works without it "
            "(fastcam.set_backend('reference'))."
        ) from e
    return _C


def extension_available() -> bool:
    try:
        load_extension()
    except ImportError:
        return False
    return True


def cuda_kernels_compiled() -> bool:
    """Whether this build of fastcam._C contains the CUDA kernels."""
    return extension_available() and bool(load_extension().cuda_compiled)
