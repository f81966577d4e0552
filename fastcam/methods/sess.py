"""SESS: Saliency Enhancing with Scaling and Sliding (Tursun, Denman, Sridharan, Fookes,
"SESS: Saliency Enhancing with Scaling and Sliding", ECCV 2022, arXiv 2207.01769) — a
meta-method over any fastcam explainer.

The image is resized to several scales; a sliding window cuts equal patches from each
scale; every patch gets the explainer's map and a weight, its target score on the softmax
of the model's output (the paper's channel-wise weight, normalised by the best patch of
the image); the optional pre-filter drops the lowest-scoring fraction of the patches. The
weighted patch maps are pasted back where they came from and fused per pixel by the
average over the patches covering it above ``theta`` (or their maximum), then
Gaussian-smoothed (11×11, σ 5) and min-max scaled per image — the paper's pipeline with
the defaults of its official code (as pytorch-grad-cam 1.5.7 ships it).

Every step runs batched on the model's device: the windows of all images and scales are
scored and explained ``batch_size`` patches at a time (patches are cut on the fly from the
rescaled images, so memory is the rescaled images plus ``batch_size`` patches), pasted and
fused with tensor scatter operations. The patch scores are a pass of the explainer's
:class:`~fastcam.engine.Engine`.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.functional import resize

from ..engine import Engine
from ..inputs import check_images, normalizer
from ..perturbation.masked_scores import callable_score, class_score
from ..targets import TargetSpec, resolve_targets
from .base import minmax

__all__ = ["SESS", "sliding_window", "window_starts", "gaussian_blur"]

#: ``score_rows(outputs (n, C), image_index (n,)) -> (n,)``: the target score of each patch
PatchScores = Callable[[Tensor, Tensor], Tensor]
#: ``explain_rows(patches (n, C, w, w), image_index (n,)) -> maps (n, w, w)``
PatchMaps = Callable[[Tensor, Tensor], Tensor]


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
    if min(h, w) <= half:          # too small to reflect: zero padding beyond the edge
        x = F.pad(x, (half, half, half, half), mode="constant")
    else:
        x = F.pad(x, (half, half, half, half), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, ksize))
    x = F.conv2d(x, k.view(1, 1, ksize, 1))
    return x[:, 0]


class SESS:
    """SESS over a fastcam explainer: ``SESS(explainer, ...)(x, targets) -> (B, H, W)``
    float32 in [0, 1] on x's device.

    Args:
        explainer: any fastcam explainer (``explainer(patches, targets) -> maps`` at the
            patches' resolution); its ``engine`` scores the patches and its ``normalize``
            applies to them (x is given as the explainer takes it).
        scales: shorter-side sizes the image is resized to (default ``num_scales`` sizes
            from the window size in steps of ``round(scale_step_ratio · window)``).
        window_size: the square window (default the input's shorter side);
            ``step_size``: its stride (default the window size).
        pre_filter_ratio: the fraction of an image's lowest-scoring patches dropped
            before their maps are computed.
        theta: ``pool="mean"`` averages, per pixel, the pasted values above theta;
            ``pool="max"`` takes their maximum.
        smooth: the final 11×11, σ 5 Gaussian blur; use_softmax_scores: patch weights
            from the softmax (else the raw output).
        batch_size: patches per model pass and per explainer call.
        engine: the engine of the patch scores (default the explainer's).
    """

    def __init__(self, explainer: Callable[..., Tensor], *, scales: Optional[List[int]] = None,
                 num_scales: int = 12, scale_step_ratio: float = 2.0 / 7.0, window_size: Optional[int] = None,
                 step_size: Optional[int] = None, pre_filter_ratio: float = 0.0, theta: float = 0.0,
                 pool: str = "mean", smooth: bool = True, use_softmax_scores: bool = True,
                 batch_size: int = 32, engine: Optional[Engine] = None) -> None:
        if not callable(explainer):
            raise TypeError(f"explainer must be a CAM explainer (callable), got {type(explainer).__name__}")
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
        engine = engine if engine is not None else getattr(explainer, "engine", None)
        if not isinstance(engine, Engine):
            raise TypeError("SESS scores the patches with the explainer's engine: pass engine= "
                            "(a fastcam.engine.Engine) for an explainer without one")
        self.explainer = explainer
        self.engine = engine
        self.normalize = getattr(explainer, "normalize", None)
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

    def get_scales(self, window_size: int) -> List[int]:
        """The shorter-side sizes the image is resized to."""
        if self.scales is not None:
            return list(self.scales)
        step = int(round(window_size * self.scale_step_ratio))
        return [window_size + step * i for i in range(self.num_scales)]

    def __call__(self, x: Tensor, targets: TargetSpec = None) -> Tensor:
        """Maps (B, H, W) in [0, 1]. ``targets``: None (each image's predicted class),
        an int, B ints or B callables of an output row."""
        check_images(x)
        norm = normalizer(self.normalize, x)
        with torch.inference_mode(False), torch.no_grad():
            resolved = resolve_targets(targets, self.engine.forward(norm(x)))
        if resolved.callables is not None:
            callables = resolved.callables
            score = callable_score(callables)

            def explain(patches: Tensor, images: Tensor) -> Tensor:
                return self.explainer(patches, [callables[i] for i in images.tolist()])
        else:
            classes = resolved.indices
            score = class_score(classes, "logit")

            def explain(patches: Tensor, images: Tensor) -> Tensor:
                return self.explainer(patches, classes[images.to(classes.device)])

        def patch_scores(out: Tensor, images: Tensor) -> Tensor:
            return score(out.softmax(dim=-1) if self.use_softmax_scores else out, images)

        return minmax(self.fused_maps(x, patch_scores, explain)).float()

    # -- the pipeline, for any scoring and explaining of patches ------------------------
    def fused_maps(self, x: Tensor, patch_scores: PatchScores, explain_rows: PatchMaps) -> Tensor:
        """The fused (and, with ``smooth``, blurred) maps (B, H, W) before the final
        scaling, for patch scores and patch maps given as functions of the patches'
        image indices (front-ends with other target conventions pass their own)."""
        b, _, height, width = x.shape
        window = self.window_size if self.window_size is not None else min(height, width)
        step = self.step_size if self.step_size is not None else window
        with torch.inference_mode(False):
            scaled, windows = self._windows(x, window, step)
            scores = self._scores(scaled, windows, window, b, patch_scores)            # (B, n)
            cams = self._fuse(scaled, windows, window, scores, explain_rows, (height, width))
            if self.smooth:
                cams = gaussian_blur(cams)
        return cams

    def _windows(self, x: Tensor, window: int, step: int) -> Tuple[List[Tensor], List[Tuple[int, int, int]]]:
        """The rescaled images (one (B, C, h_s, w_s) per scale) and every window as
        (scale index, x1, y1), scale by scale, row by row."""
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

    def _scores(self, scaled, windows, window: int, b: int, patch_scores: PatchScores) -> Tensor:
        """Target score (clipped at 0) of every (image, window), (B, n)."""
        n = len(windows)
        rows = [(i, j) for i in range(b) for j in range(n)]
        norm = normalizer(self.normalize, scaled[0])
        flat = []
        with torch.no_grad():
            for s in range(0, len(rows), self.batch_size):
                chunk = rows[s:s + self.batch_size]
                out = self.engine.forward(norm(self._patches(scaled, windows, window, chunk)))
                images = torch.tensor([i for i, _ in chunk], device=out.device)
                flat.append(patch_scores(out, images).to(out.dtype))
        return torch.cat(flat).reshape(b, n).clamp(min=0)

    def _fuse(self, scaled, windows, window: int, scores: Tensor, explain_rows: PatchMaps,
              size: Tuple[int, int]) -> Tensor:
        b, n = scores.shape
        keep_from = int(n * self.pre_filter_ratio)
        order = torch.argsort(scores, dim=1, stable=True)[:, keep_from:]          # ascending
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
            images = torch.tensor([i for i, _ in chunk], device=scores.device)
            cams = torch.as_tensor(explain_rows(patches, images))
            cams = cams.to(scores.device, torch.float32) * flat_w[s:s + len(chunk), None, None].float()
            pasted = self._paste(cams, [windows[j] for _, j in chunk], scaled, size)
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
        """Each patch map placed at its window on a zero canvas of its scale and resized
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
