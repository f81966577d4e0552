"""``pytorch_grad_cam.sess``: SESS, Saliency Enhancing with Scaling and Sliding (Tursun et al.,
ECCV 2022, arXiv 2207.01769), a meta-method over any CAM method.

The image is resized to several scales; a sliding window cuts equal patches from each
scale; every patch gets the CAM of the base method and a weight, its target score on the
softmax of the model's output (the paper's channel-wise weight, normalised by the best
patch); the weighted patch CAMs are pasted back where they came from and fused by a
per-pixel average over the patches covering a pixel above ``theta`` (or a maximum), then
optionally Gaussian-smoothed (11×11, σ 5) and min-max scaled — grad-cam 1.5.7's numerics.

Here every step runs batched on the model's device: the windows of all images and scales
are scored and explained ``batch_size`` patches at a time (patches are cut on the fly
from the rescaled images, so memory is the rescaled images plus ``batch_size`` patches,
never all windows at once), pasted and fused with tensor scatter operations.
"""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms.functional import resize

from ...engine import Engine
from .grad_cam import GradCAM
from .utils.image import scale_cam_image
from .utils.model_targets import ClassifierOutputTarget

__all__ = ["SESS", "sliding_window", "window_starts"]


def window_starts(length: int, step_size: int, window_size: int) -> List[int]:
    """Start offsets of windows of ``window_size`` every ``step_size`` along ``length``; the
    last window is shifted back to end at the border (so all have the same size)."""
    if step_size < 1 or window_size < 1:
        raise ValueError(f"step_size and window_size must be positive, got {step_size}, {window_size}")
    starts = []
    for start in range(0, length, step_size):
        if start + window_size >= length:
            starts.append(max(length - window_size, 0))
            break
        starts.append(start)
    return starts


def sliding_window(height: int, width: int, step_size: int, window_size: int) -> List[Tuple[int, int]]:
    """Top-left corners ``(x, y)`` of the windows covering a ``height × width`` image, row by row."""
    return [(x, y) for y in window_starts(height, step_size, window_size)
            for x in window_starts(width, step_size, window_size)]


def gaussian_blur(maps: Tensor, ksize: int = 11, sigma: float = 5.0) -> Tensor:
    """OpenCV's ``GaussianBlur(m, (ksize, ksize), sigma)`` of maps (B, H, W): the separable
    normalised kernel ``exp(−i²/2σ²)``, borders reflected without repeating the edge
    (``BORDER_REFLECT_101``)."""
    half = ksize // 2
    i = torch.arange(ksize, dtype=torch.float64, device=maps.device) - half
    k = torch.exp(-i ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).to(maps.dtype)
    h, w = maps.shape[-2:]
    x = maps[:, None]
    if min(h, w) <= half:          # too small to reflect: replicate-free zero padding beyond the edge
        x = F.pad(x, (half, half, half, half), mode="constant")
    else:
        x = F.pad(x, (half, half, half, half), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, ksize))
    x = F.conv2d(x, k.view(1, 1, ksize, 1))
    return x[:, 0]


class SESS:
    """SESS with grad-cam's interface::

        SESS(model, target_layers, reshape_transform=None, base_method=GradCAM, scales=None,
             num_scales=12, scale_step_ratio=2/7, window_size=None, step_size=None,
             pre_filter_ratio=0.0, theta=0.0, pool="mean", smooth=True,
             use_softmax_scores=True, batch_size=32, **kwargs)(input_tensor, targets=None,
             eigen_smooth=False) -> float32 NumPy (B, H, W)

    ``base_method``: a CAM class of this front-end (fastcam's GradCAM by default, or any of
    ``fastcam.compat.pytorch_grad_cam``'s), built as ``base_method(model, target_layers,
    reshape_transform, **kwargs)``. ``scales``: shorter-side sizes (default ``num_scales``
    sizes from the window size in steps of ``round(scale_step_ratio · window)``);
    ``window_size``: the square window (default the input's shorter side); ``step_size``:
    its stride (default the window size). ``pre_filter_ratio`` drops that fraction of the
    lowest-scoring patches (per image) before their CAMs are computed; ``pool`` is
    ``"mean"`` or ``"max"``; ``targets`` None means each image's predicted class.
    A target is called on a batch of outputs (B, C), as grad-cam's SESS does.

    Unlike grad-cam, all images and windows are processed in batches of ``batch_size``
    patches across images and scales, on the model's device.
    """

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module],
                 reshape_transform: Optional[Callable] = None, base_method: Callable[..., Any] = GradCAM,
                 scales: Optional[List[int]] = None, num_scales: int = 12, scale_step_ratio: float = 2.0 / 7.0,
                 window_size: Optional[int] = None, step_size: Optional[int] = None,
                 pre_filter_ratio: float = 0.0, theta: float = 0.0, pool: str = "mean", smooth: bool = True,
                 use_softmax_scores: bool = True, batch_size: int = 32, **kwargs: Any) -> None:
        if pool not in ("mean", "max"):
            raise ValueError(f"pool has to be either 'mean' or 'max'. Got: {pool}.")
        if not 0.0 <= pre_filter_ratio < 1.0:
            raise ValueError(f"pre_filter_ratio has to be in [0, 1). Got: {pre_filter_ratio}.")
        if num_scales < 1:
            raise ValueError(f"num_scales has to be at least 1. Got: {num_scales}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        for name, v in (("window_size", window_size), ("step_size", step_size)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive int or None, got {v!r}")
        self.base_cam = base_method(model, target_layers, reshape_transform, **kwargs)
        self.model = self.base_cam.model
        param = next(self.model.parameters(), None)
        self.device = param.device if param is not None else torch.device("cpu")
        self.engine = Engine(self.model)
        self.scales = scales
        self.num_scales = num_scales
        self.scale_step_ratio = scale_step_ratio
        self.window_size = window_size
        self.step_size = step_size
        self.pre_filter_ratio = pre_filter_ratio
        self.theta = theta
        self.pool = pool
        self.smooth = smooth
        self.use_softmax_scores = use_softmax_scores
        self.batch_size = batch_size

    def __call__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        return self.forward(*args, **kwargs)

    def __enter__(self) -> "SESS":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False

    def get_scales(self, window_size: int) -> List[int]:
        """The shorter-side sizes the image is resized to."""
        if self.scales is not None:
            return list(self.scales)
        step = int(round(window_size * self.scale_step_ratio))
        return [window_size + step * i for i in range(self.num_scales)]

    # -- the call ------------------------------------------------------------------------
    def forward(self, input_tensor: Tensor, targets: Optional[Sequence[Callable]] = None,
                eigen_smooth: bool = False) -> np.ndarray:
        if not isinstance(input_tensor, Tensor) or input_tensor.dim() != 4:
            raise ValueError("input_tensor must be a (B, C, H, W) tensor, got "
                             f"{getattr(input_tensor, 'shape', type(input_tensor).__name__)}")
        x = input_tensor.detach().to(self.device)
        b, _, height, width = x.shape
        targets = [None] * b if targets is None else list(targets)
        if len(targets) != b:
            raise ValueError(f"Expected one target per image. Got {len(targets)} targets for {b} images.")
        window = self.window_size if self.window_size is not None else min(height, width)
        step = self.step_size if self.step_size is not None else window
        with torch.inference_mode(False):
            targets = self._resolve(x, targets)
            scaled, windows = self._windows(x, window, step)
            scores = self._scores(scaled, windows, window, targets)            # (B, n)
            cams = self._fuse(scaled, windows, window, scores, targets, (height, width), eigen_smooth)
            if self.smooth:
                cams = gaussian_blur(cams)
        return scale_cam_image(cams.float().cpu().numpy())

    def _resolve(self, x: Tensor, targets: list) -> list:
        if all(t is not None for t in targets):
            return targets
        with torch.no_grad():
            classes = self.engine.forward(x).argmax(dim=-1).tolist()
        return [ClassifierOutputTarget(c) if t is None else t for t, c in zip(targets, classes)]

    def _windows(self, x: Tensor, window: int, step: int) -> Tuple[List[Tensor], List[Tuple[int, int, int]]]:
        """The rescaled images (one (B, C, h_s, w_s) per scale) and every window as
        (scale index, x1, y1), in grad-cam's order (scale by scale, row by row)."""
        scaled, windows = [], []
        for s, scale in enumerate(self.get_scales(window)):
            if scale < window:
                raise ValueError(f"Every scale has to be at least the window size {window}. Got: {scale}.")
            img = resize(x, scale)
            scaled.append(img)
            windows.extend((s, x1, y1) for x1, y1 in sliding_window(img.shape[-2], img.shape[-1], step, window))
        return scaled, windows

    @staticmethod
    def _patches(scaled: List[Tensor], windows, window: int, rows: Sequence[Tuple[int, int]]) -> Tensor:
        """The patches of (image, window index) pairs, cut on the fly."""
        out = []
        for i, j in rows:
            s, x1, y1 = windows[j]
            out.append(scaled[s][i, :, y1:y1 + window, x1:x1 + window])
        return torch.stack(out)

    def _scores(self, scaled, windows, window: int, targets: list) -> Tensor:
        """Target score (clipped at 0) of every (image, window), (B, n); the softmax of the
        output unless ``use_softmax_scores`` is False. A target sees a batch of outputs."""
        b, n = len(targets), len(windows)
        rows = [(i, j) for i in range(b) for j in range(n)]
        flat = []
        with torch.no_grad():
            for s in range(0, len(rows), self.batch_size):
                chunk = rows[s:s + self.batch_size]
                out = self.engine.forward(self._patches(scaled, windows, window, chunk))
                if self.use_softmax_scores:
                    out = torch.softmax(out, dim=-1)
                images = torch.tensor([i for i, _ in chunk], device=out.device)
                score = torch.empty(len(chunk), dtype=out.dtype, device=out.device)
                for i in images.unique().tolist():
                    sel = (images == i).nonzero()[:, 0]
                    score[sel] = torch.as_tensor(targets[i](out[sel]), dtype=out.dtype, device=out.device)
                flat.append(score)
        return torch.cat(flat).reshape(b, n).clamp(min=0)

    def _fuse(self, scaled, windows, window: int, scores: Tensor, targets: list,
              size: Tuple[int, int], eigen_smooth: bool) -> Tensor:
        b, n = scores.shape
        keep_from = int(n * self.pre_filter_ratio)
        order = torch.argsort(scores, dim=1, stable=True)[:, keep_from:]          # ascending, as grad-cam
        best = scores.gather(1, order[:, -1:])
        weights = torch.where(best > 0, scores.gather(1, order) / torch.where(best > 0, best, 1),
                              torch.ones_like(best))
        rows = [(i, int(j)) for i in range(b) for j in order[i].tolist()]
        flat_w = weights.reshape(-1)
        total = torch.zeros(b, *size, device=scores.device)
        counts = torch.zeros(b, *size, device=scores.device)
        for s in range(0, len(rows), self.batch_size):
            chunk = rows[s:s + self.batch_size]
            patches = self._patches(scaled, windows, window, chunk)
            cams = torch.as_tensor(self.base_cam(patches, [targets[i] for i, _ in chunk], eigen_smooth=eigen_smooth))
            cams = cams.to(scores.device, torch.float32) * flat_w[s:s + len(chunk), None, None].float()
            pasted = self._paste(cams, [windows[j] for _, j in chunk], scaled, size)
            images = torch.tensor([i for i, _ in chunk], device=scores.device)
            if self.pool == "max":
                total.index_reduce_(0, images, pasted, "amax")
            else:
                mask = pasted > self.theta
                total.index_add_(0, images, torch.where(mask, pasted, 0))
                counts.index_add_(0, images, mask.float())
        if self.pool == "max":
            return total
        return torch.where(counts > 0, total / counts.clamp(min=1), 0)

    @staticmethod
    def _paste(cams: Tensor, where: Sequence[Tuple[int, int, int]], scaled: List[Tensor],
               size: Tuple[int, int]) -> Tensor:
        """Each patch CAM placed at its window on a zero canvas of its scale and resized
        (bilinear, half-pixel: OpenCV's INTER_LINEAR) to the input's size; (m, H, W)."""
        out = torch.empty(len(where), *size, device=cams.device)
        by_scale: dict = {}
        for k, (s, _, _) in enumerate(where):
            by_scale.setdefault(s, []).append(k)
        for s, ks in by_scale.items():
            canvas = torch.zeros(len(ks), *scaled[s].shape[-2:], device=cams.device)
            for c, k in enumerate(ks):
                _, x1, y1 = where[k]
                h, w = cams.shape[-2:]
                canvas[c, y1:y1 + h, x1:x1 + w] = cams[k]
            out[ks] = F.interpolate(canvas[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        return out
