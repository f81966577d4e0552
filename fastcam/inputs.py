"""Input checks and the one convention for inputs (``normalize``)."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

Normalize = Optional[Tuple[Sequence[float], Sequence[float]]]


def check_images(x: Tensor) -> None:
    """A batch of images: a 4-D floating tensor (B,C,H,W) of finite values."""
    if not isinstance(x, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"input must be a 4-D batch (B,C,H,W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"input must be floating point, got {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError("input batch is empty")
    if x.device.type == "meta":
        raise ValueError("input is on the meta device: it holds no values to explain")
    check_finite(x, "input")


HALF = (torch.float16, torch.bfloat16)


def at_least_fp32(t: Tensor) -> Tensor:
    """``t`` in float32 when it is half precision (fp16/bf16), else as it is: the
    dtype the CAM algebra, scores and optimiser state run in."""
    return t.float() if t.dtype in HALF else t


def all_finite(t: Tensor) -> bool:
    """Whether ``t`` holds no NaN and no ±inf."""
    if not t.numel():
        return True
    # min and max propagate NaN and expose ±inf: one pass, no boolean copy of t
    lo, hi = torch.aminmax(t.detach())
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def check_finite(t: Tensor, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` if ``t`` holds NaN or ±inf."""
    if not all_finite(t):
        raise ValueError(f"{what} contains NaN or infinite values")


def normalizer(normalize: Normalize, x: Tensor):
    """The function the model input goes through: identity when ``normalize`` is
    None; else ``(x − mean)/std`` per channel, x being pixel-space in [0, 1]
    (masks then multiply the pixel-space image: masked pixels are black)."""
    if normalize is None:
        return lambda t: t
    mean, std = normalize
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    if not bool(torch.isfinite(mean).all() & torch.isfinite(std).all()):
        raise ValueError("normalize: mean and std must be finite")
    if mean.shape[1] not in (1, x.shape[1]) or std.shape[1] not in (1, x.shape[1]):
        raise ValueError(f"normalize has {mean.shape[1]} means / {std.shape[1]} stds for "
                         f"{x.shape[1]} channels")
    if bool((std <= 0).any()):
        raise ValueError("normalize: every std must be positive")
    return lambda t: (t - mean) / std
