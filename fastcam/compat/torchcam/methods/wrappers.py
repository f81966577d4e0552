"""TorchCAM's extractors built on another extractor: RefineCAM and FinerCAM.

Both wrap a front-end extractor of this package (its hooks, its numerics) and
change only what it is asked (FinerCAM: the objective) or how its per-layer
maps are combined (RefineCAM), as TorchCAM 0.5's ``_CAMWrapper`` classes do.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ...numerics import normalize
from .core import _CAM, ClassIdx, LayerArg, check_cams, largest_shape, resize_map
from .gradient import GradCAM, GradCAMpp, LayerCAM

__all__ = ["RefineCAM", "FinerCAM"]


class _CAMWrapper:
    """Hook lifecycle and metadata delegated to the wrapped extractor ``base_cam``."""

    def __init__(self, base_cam: _CAM) -> None:
        self.base_cam = base_cam

    @property
    def model(self) -> nn.Module:
        return self.base_cam.model

    @property
    def target_names(self) -> list[str]:
        return self.base_cam.target_names

    @property
    def hook_handles(self) -> list:
        return self.base_cam.hook_handles

    def enable_hooks(self) -> None:
        self.base_cam.enable_hooks()

    def disable_hooks(self) -> None:
        self.base_cam.disable_hooks()

    def reset_hooks(self) -> None:
        self.base_cam.reset_hooks()

    def remove_hooks(self) -> None:
        self.base_cam.remove_hooks()

    def __enter__(self):
        self.base_cam.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.base_cam.__exit__(exc_type, exc, tb)


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


class RefineCAM(_CAMWrapper):
    """RefineCAM (TorchCAM 0.5's multi-layer refinement): the base extractor's maps
    of the target layers (≥ 2), each scaled ``(M−min)/(max−min+1e-8)`` and resized
    bilinearly (align_corners=False) to the largest layer's size (or
    ``target_shape``), multiplied element-wise, scaled again when ``normalized``.
    A call returns a one-element list (N, h, w).

    Args:
        base_method: a gradient extractor class of this package (default :class:`GradCAMpp`).
        **base_kwargs: passed to it.
    """

    def __init__(self, model: nn.Module, target_layer: Sequence[Union[nn.Module, str]],
                 input_shape: tuple[int, ...] = (3, 224, 224), *, base_method: type[_CAM] = GradCAMpp,
                 **base_kwargs: Any) -> None:
        if not isinstance(target_layer, (list, tuple)) or len(target_layer) < 2:
            raise ValueError("RefineCAM requires at least two target layers")
        if not isinstance(base_method, type) or not issubclass(base_method, _CAM):
            raise TypeError("base_method must be a CAM extractor class of fastcam.compat.torchcam.methods")
        super().__init__(base_method(model, list(target_layer), input_shape=input_shape, **base_kwargs))

    def __call__(self, class_idx: Optional[ClassIdx] = None, scores: Any = None, normalized: bool = True,
                 target_shape: Optional[tuple[int, ...]] = None, *, targets: Any = None,
                 **kwargs: Any) -> list[Tensor]:
        cams = self.base_cam(class_idx, scores, normalized=True, targets=targets, **kwargs)
        return [self.fuse_cams(cams, target_shape, normalized)]

    def compute_cams(self, class_idx: Optional[ClassIdx] = None, scores: Any = None, normalized: bool = True,
                     target_shape: Optional[tuple[int, ...]] = None, *, targets: Any = None,
                     **kwargs: Any) -> list[Tensor]:
        cams = self.base_cam.compute_cams(class_idx, scores, normalized=True, targets=targets, **kwargs)
        return [self.fuse_cams(cams, target_shape, normalized)]

    @staticmethod
    @torch.no_grad()
    def fuse_cams(cams: list[Tensor], target_shape: Optional[tuple[int, ...]] = None,
                  normalized: bool = True) -> Tensor:
        """The product of the scaled, resized maps (scaled again when ``normalized``)."""
        check_cams(cams)
        shape = target_shape or largest_shape(cams)
        refined = None
        for cam in cams:
            up = resize_map(normalize(cam, spatial_dims=cam.dim() - 1), shape)
            refined = up if refined is None else refined * up
        return normalize(refined, spatial_dims=refined.dim() - 1) if normalized else refined

    def __repr__(self) -> str:
        return f"RefineCAM(base_method={type(self.base_cam).__name__}, target_layer={self.target_names})"


class FinerCAM(_CAMWrapper):
    """Finer-CAM (Zhang et al. 2025) as TorchCAM 0.5 has it: the base extractor explains
    the contrastive objective ``y_c − γ · mean_t y_{d_t}`` instead of ``y_c`` (the
    comparison enters before the map's ReLU). References ``d_t``: ``comparison_idx``
    (an int, a list for the batch, or one equal-length list per sample), else the
    ``num_references`` classes whose scores are closest to the target's.

    Args:
        base_method: :class:`GradCAM` (default), :class:`GradCAMpp` or :class:`LayerCAM`.
        gamma: the comparison strength γ ≥ 0 (default 0.6).
        num_references: automatic references per sample (capped by the classes left).
    """

    def __init__(self, model: nn.Module, target_layer: LayerArg = None,
                 input_shape: tuple[int, ...] = (3, 224, 224), *, base_method: type[_CAM] = GradCAM,
                 gamma: float = 0.6, num_references: int = 3, **base_kwargs: Any) -> None:
        if base_method not in (GradCAM, GradCAMpp, LayerCAM):
            raise TypeError("base_method must be GradCAM, GradCAMpp, or LayerCAM")
        if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real):
            raise TypeError("gamma must be a real number")
        if not math.isfinite(gamma) or gamma < 0:
            raise ValueError("gamma must be finite and non-negative")
        if not _is_int(num_references):
            raise TypeError("num_references must be an integer")
        if num_references < 1:
            raise ValueError("num_references must be positive")
        self.gamma = float(gamma)
        self.num_references = int(num_references)
        super().__init__(base_method(model, target_layer, input_shape=input_shape, **base_kwargs))

    def _references(self, comparison_idx: Any, scores: Tensor, target: list[int]) -> Tensor:
        B, C = scores.shape
        t = torch.tensor(target, device=scores.device)[:, None]
        if comparison_idx is None:
            distance = (scores.detach() - scores.detach().gather(1, t)).abs()
            distance.scatter_(1, t, float("inf"))
            return distance.topk(min(self.num_references, C - 1), dim=1, largest=False).indices
        if _is_int(comparison_idx):
            rows = [[int(comparison_idx)]] * B
        elif isinstance(comparison_idx, (list, tuple)) and comparison_idx and \
                all(isinstance(r, (list, tuple)) for r in comparison_idx):
            rows = [list(r) for r in comparison_idx]
            if len(rows) != B:
                raise ValueError("per-sample comparison_idx must match the batch size")
            if any(not r for r in rows) or len({len(r) for r in rows}) != 1:
                raise ValueError("per-sample comparison_idx rows must be non-empty and of equal lengths")
        elif isinstance(comparison_idx, (list, tuple)) and comparison_idx and all(_is_int(c) for c in comparison_idx):
            rows = [list(comparison_idx)] * B
        elif isinstance(comparison_idx, (list, tuple)) and not comparison_idx:
            raise ValueError("comparison_idx cannot be empty")
        else:
            raise TypeError("comparison_idx must be an integer, a list, or a nested list")
        for n, (c, row) in enumerate(zip(target, rows)):
            if any(not _is_int(r) for r in row):
                raise TypeError("comparison_idx must contain integers")
            if any(r < 0 or r >= C for r in row):
                raise ValueError(f"comparison_idx contains an out-of-range index for sample {n}")
            if len(set(row)) != len(row):
                raise ValueError(f"comparison_idx contains duplicates for sample {n}")
            if c in row:
                raise ValueError(f"comparison_idx contains the target class for sample {n}")
        return torch.tensor(rows, device=scores.device)

    def _contrastive_scores(self, class_idx: Any, scores: Any, comparison_idx: Any) -> Tensor:
        if scores is None:
            raise ValueError("model output scores is required to compute FinerCAM")
        if not isinstance(scores, Tensor):
            raise TypeError("scores must be a tensor")
        if scores.dim() != 2 or scores.shape[0] < 1:
            raise ValueError("scores must have shape (batch_size, num_classes)")
        B, C = scores.shape
        if C < 2:
            raise ValueError("FinerCAM requires at least one comparison class")
        if _is_int(class_idx):
            target = [int(class_idx)] * B
        elif isinstance(class_idx, (list, tuple)) and all(_is_int(c) for c in class_idx):
            if len(class_idx) != B:
                raise ValueError("expected batch size and length of `class_idx` to be the same")
            target = [int(c) for c in class_idx]
        else:
            raise TypeError("class_idx must be an integer or a list of integers")
        if any(c < 0 or c >= C for c in target):
            raise ValueError("class_idx contains an out-of-range index")
        refs = self._references(comparison_idx, scores, target)
        t = torch.tensor(target, device=scores.device)[:, None]
        return scores.gather(1, t) - self.gamma * scores.gather(1, refs).mean(dim=1, keepdim=True)

    def __call__(self, class_idx: ClassIdx, scores: Optional[Tensor] = None, comparison_idx: Any = None,
                 normalized: bool = True, **kwargs: Any) -> list[Tensor]:
        return self._explain(self.base_cam, class_idx, scores, comparison_idx, normalized, kwargs)

    def compute_cams(self, class_idx: ClassIdx, scores: Optional[Tensor] = None, comparison_idx: Any = None,
                     normalized: bool = True, **kwargs: Any) -> list[Tensor]:
        return self._explain(self.base_cam.compute_cams, class_idx, scores, comparison_idx, normalized, kwargs)

    def _explain(self, call: Any, class_idx: ClassIdx, scores: Optional[Tensor], comparison_idx: Any,
                 normalized: bool, kwargs: dict[str, Any]) -> list[Tensor]:
        """``call`` (the base extractor's call or compute_cams) on the contrastive objective
        as the scores of a one-class output (class 0)."""
        if kwargs.get("targets") is not None:
            raise ValueError("FinerCAM does not support arbitrary output targets")
        objective = self._contrastive_scores(class_idx, scores, comparison_idx)
        return call([0] * objective.shape[0], objective, normalized, **kwargs)

    def fuse_cams(self, cams: list[Tensor], target_shape: Optional[tuple[int, int]] = None) -> Tensor:
        return self.base_cam.fuse_cams(cams, target_shape)

    def __repr__(self) -> str:
        return (f"FinerCAM(base_method={type(self.base_cam).__name__}, target_layer={self.target_names}, "
                f"gamma={self.gamma}, num_references={self.num_references})")
