"""``pytorch_grad_cam.metrics.arcc``: ARCC, the harmonic mean of Coherency, 1 − Complexity
and ROAD (grad-cam 1.5.7's 2026 metric; Complexity and Coherency after Rong et al.,
"A Consistent and Efficient Evaluation Strategy for Attribution Methods", arXiv 2104.10252).

An adapter over fastcam's native :mod:`fastcam.metrics.arcc` (Pearson, the L1 term, the
harmonic mean): the functions take NumPy arrays or tensors and return NumPy where grad-cam
returns NumPy; targets are grad-cam's callables and ``base_method`` any grad-cam-style CAM.
ROAD is this front-end's :class:`~fastcam.compat.pytorch_grad_cam.metrics.road.ROADCombined`
(itself over :func:`fastcam.metrics.road.road_changes`).
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from fastcam.metrics.arcc import EPS, coherency_of, harmonic_arcc, l1_per_pixel, pearson
from .perturbation_confidence import CamsLike, check_inputs
from .road import ROADCombined

ArrayLike = Union[np.ndarray, Tensor]

__all__ = ["EPS", "pearson", "batch_pearson_coherency", "Complexity", "Coherency", "ARCC"]


def _as_batch(a: ArrayLike, name: str, device: Optional[torch.device] = None) -> Tensor:
    t = torch.as_tensor(a)
    if t.dim() < 2:
        raise ValueError(f"{name} must be a batch (B, ...) of maps, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.float()
    return t.to(device if device is not None else t.device).reshape(t.shape[0], -1)


def _out(t: Tensor, like_numpy: bool) -> ArrayLike:
    return t.detach().cpu().numpy() if like_numpy else t


def batch_pearson_coherency(A: ArrayLike, B: ArrayLike) -> ArrayLike:
    """Pearson correlation of every pair ``A[i], B[i]`` (maps flattened), shape (B,): NumPy
    when ``A`` is NumPy (grad-cam's function), else a tensor on A's device."""
    a = _as_batch(A, "A")
    b = _as_batch(B, "B", a.device)
    if a.shape != b.shape:
        raise ValueError(f"A and B must have the same shape, got {tuple(torch.as_tensor(A).shape)} "
                         f"and {tuple(torch.as_tensor(B).shape)}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    return _out(pearson(a.to(dtype), b.to(dtype)), isinstance(A, np.ndarray))


class Complexity:
    """Complexity of a map: its L1 norm per pixel, ``Σ|S| / (H·W)`` per image (0 for an
    all-zero map, 1 for an all-one map in [0, 1])."""

    def __call__(self, grayscale_cams: ArrayLike) -> ArrayLike:
        flat = _as_batch(grayscale_cams, "grayscale_cams")
        return _out(l1_per_pixel(flat), isinstance(grayscale_cams, np.ndarray))


class Coherency:
    """Coherency: ``(ρ(S', S) + 1) / 2`` with ρ the Pearson correlation between the maps S
    and the maps S' that ``base_method`` makes of the masked images ``x ⊙ S`` (one batched
    call of the base method). ``model`` is accepted for grad-cam's signature and unused."""

    def __call__(self, input_tensor: Tensor, grayscale_cams: CamsLike, targets: Sequence[Callable],
                 model: Optional[nn.Module], base_method: Callable[..., Any]) -> np.ndarray:
        cams = check_inputs(input_tensor, grayscale_cams, targets)
        if not callable(base_method):
            raise TypeError(f"base_method must be a CAM method (callable), got {type(base_method).__name__}")
        mixed = input_tensor * cams[:, None].to(input_tensor.dtype)
        mixed_cams = base_method(input_tensor=mixed, targets=targets)
        remaps = _as_batch(mixed_cams, "the base method's maps", cams.device)
        return coherency_of(cams, remaps).detach().float().cpu().numpy()


class ARCC:
    """ARCC: the harmonic mean of Coherency, 1 − Complexity and the rescaled ROAD score,
    ``3 / (1/(coh + ε) + 1/(1 − cplx + ε) + 1/(road + ε))`` with ``road = clip(2·ROADCombined, 0, 1)``
    (ROADCombined lies in [−0.5, 0.5]) and ε = 1e-8, as grad-cam 1.5.7.

    ``road_kwargs`` go to :class:`ROADCombined` (fastcam's options, e.g. ``noise=0`` for a
    deterministic imputation, ``batch_size``); not part of grad-cam's interface.
    """

    def __init__(self, base_method: Callable[..., Any], road_percentiles: Sequence[float] = (20, 40, 60, 80),
                 **road_kwargs: Any) -> None:
        if not callable(base_method):
            raise TypeError(f"base_method must be a CAM method (callable), got {type(base_method).__name__}")
        self.complexity = Complexity()
        self.coherency = Coherency()
        self.road = ROADCombined(percentiles=list(road_percentiles), **road_kwargs)
        self.base_method = base_method

    def __call__(self, input_tensor: Tensor, grayscale_cams: CamsLike, targets: Sequence[Callable],
                 model: nn.Module) -> np.ndarray:
        cams = check_inputs(input_tensor, grayscale_cams, targets)
        complexity = self.complexity(cams).double()
        coherency = torch.from_numpy(self.coherency(input_tensor, grayscale_cams, targets, model,
                                                    self.base_method)).to(cams.device, torch.float64)
        road = torch.from_numpy(self.road(input_tensor, grayscale_cams, targets, model)).to(cams.device)
        return harmonic_arcc(coherency, complexity, road).float().cpu().numpy()
