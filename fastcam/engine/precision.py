"""Precision names, their autocast dtypes, and whether a device runs them."""
from __future__ import annotations

from typing import Literal, Optional

import torch

Precision = Literal["fp32", "bf16", "fp16"]

#: precision name -> the autocast dtype (None: no autocast)
PRECISIONS: dict[str, Optional[torch.dtype]] = {"fp32": None, "bf16": torch.bfloat16,
                                                "fp16": torch.float16}
_HALF = (torch.bfloat16, torch.float16)


def check_precision(precision: str, device: Optional[torch.device] = None) -> Optional[torch.dtype]:
    """The autocast dtype of ``precision``; ``ValueError`` for an unknown name or,
    with ``device``, a precision that device cannot run natively (CPU: oneDNN's
    bf16/fp16 support; CUDA: bf16 needs compute capability ≥ 8.0)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None or device is None:
        return dtype
    device = torch.device(device)
    if device.type == "cpu":
        ok = cpu_supports(dtype)
        why = "this CPU has no native support for it (oneDNN needs AVX512-BF16/AMX for bf16, " \
              "AVX512-FP16/AMX-FP16 for fp16)"
    elif device.type == "cuda":
        ok = dtype == torch.float16 or torch.cuda.is_bf16_supported(including_emulation=False)
        why = f"{torch.cuda.get_device_name(device)} does not support bf16 natively"
    else:
        ok = torch.amp.is_autocast_available(device.type)
        why = f"torch has no autocast for device type {device.type!r}"
    if not ok:
        raise ValueError(f"precision={precision!r} cannot run on {device}: {why}; "
                         "use precision='fp32'")
    return dtype


def cpu_supports(dtype: torch.dtype) -> bool:
    """Whether oneDNN runs ``dtype`` (bf16/fp16) natively on this CPU."""
    if not torch.backends.mkldnn.is_available():
        return False
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())


