"""Building the native method behind a front-end class in TorchCAM's numerics.

The native gradient methods take ``mode="torchcam"`` for TorchCAM 0.5's numerics
(XGrad-CAM's eps, Grad-CAM++'s weights as TorchCAM computes them). On a fastcam
without that option the front-end computes those weights itself from the same
gradients (:func:`gradcampp_weights`, :data:`XGRADCAM_EPS`).
"""
from __future__ import annotations

import inspect
from typing import Any

from torch import Tensor, nn

from ....methods.base import BaseCAM as _Method

#: TorchCAM's eps in XGrad-CAM's Σ(gA) / (ΣA + eps)
XGRADCAM_EPS = 1e-8


def takes_mode(cls: type[_Method]) -> bool:
    """Whether the native class has a ``mode`` option (``mode=...`` in its constructor)."""
    return "mode" in inspect.signature(cls.__init__).parameters


def native(cls: type[_Method], model: nn.Module, layers: list[nn.Module], **options: Any) -> tuple[_Method, bool]:
    """(the native method on ``layers``, whether it runs TorchCAM's numerics itself)."""
    if takes_mode(cls):
        return cls(model, layers, mode="torchcam", **options), True
    return cls(model, layers, **options), False


def gradcampp_weights(g: Tensor) -> Tensor:
    """TorchCAM 0.5's Grad-CAM++ channel weights as it computes them: ``Σ_ij g² · ReLU(g)``.

    TorchCAM's docstring states the paper's α = g² / (2g² + Σ_ab A_ab g³), but its
    code divides a boolean-indexed *copy* of g² in place (``alpha[mask].div_(...)``),
    which leaves α = g²; these are the weights its maps are made of."""
    return (g * g * g.relu()).flatten(2).sum(-1)
