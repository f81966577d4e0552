"""ADVISE (Dehshibi, Ashtari-Majlan, Adhane, Masip; arXiv 2203.01289, The Visual
Computer 2024)."""
from __future__ import annotations

import time
from typing import Literal, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..inputs import at_least_fp32
from ..quality.avx import avx_of_pairs
from ..network.layers import LayerSpec
from ..ops import cam_combine
from ..ops.adaptive_kde import adaptive_kde
from .base import BaseCAM, CallContext, CommonOptions, Unpack, minmax

Upsample = Literal["bicubic", "bilinear"]


class ADVISE(BaseCAM):
    """ADVISE: channels grouped by the shape of their activation distribution,
    one Grad-CAM per group, the group whose map scores best on AVX wins.

    The method is only fully described by the authors' MATLAB code, so this
    follows the code (docs/methods/advise.md says so); the alternatives
    are options.

    1. One forward: activation A (B, K, h, w) at the target layer (the official
       layers: VGG16 conv5_3 before its ReLU = ``features.28``, ResNet-50
       ``layer4``, AlexNet conv5 before its ReLU), softmax probabilities, c1 and
       c2. c1 is the top-1 class (ADVISE explains the prediction); ``targets``
       (class indices) overrides it, and c2 is then the most probable class
       other than c1 (the top-2 class by default).
    2. Relevance of channel k: the number of peaks of the locally adaptive KDE
       (ssvkernel) of the values of A_k lying in [0, 1], on a grid of h·w points
       (:func:`fastcam.ops.adaptive_kde`, all B·K channels in one call; a channel
       without an estimate has 0 peaks). ``minmax_channels=True`` min-max scales
       each channel to [0, 1] first (not in the official code).
    3. Gradients of the softmax *probabilities* of c1 and c2 w.r.t. A (one
       forward and two backward passes for the whole batch).
    4. For each distinct peak count p of an image (0 included, as in the
       official loop over min..max): the candidate = Grad-CAM restricted to
       the channels with count p (weights = spatial mean of the gradient),
       ReLU, min-max, upsampled to the input size, for c1 and for c2.
       ``upsample="bicubic"`` (official: MATLAB ``imresize(..., 'bicubic')``)
       upsamples the min-maxed low-resolution map with ``F.interpolate``
       (bicubic, align_corners=False; torch's cubic coefficient is −0.75 where
       MATLAB's is −0.5) and clamps to [0, 1], since bicubic interpolation
       overshoots. ``upsample="bilinear"`` uses fastcam's fused
       :func:`~fastcam.ops.cam_combine` (ReLU → bilinear → min-max), so a single
       group equals :class:`~fastcam.methods.gradcam.GradCAM` of the probability.
    5. A candidate is scored when its group has channels and its c1 map is not
       constant (the official condition ``sum(rescale(map)) > 0``); its score is
       :func:`fastcam.metrics.avx.avx` of the pair (c1 map, c2 map), all
       candidates of all images batched through the model ``batch_size`` masked
       images at a time. The output is the best scored candidate's c1 map (ties:
       the lowest peak count). An image with no scored candidate gets an all-zero
       map and ``best = -1``.

    Last-call record (``self.last``): ``scores`` = probability of c1, ``weights``
    / ``low_res`` = the best group's (zero for ``best = -1``), and ``extra``:
    ``peaks`` (B,K) · ``candidates`` (B,G,H,W) c1 maps and ``candidates_c2`` ·
    ``candidate_peak_counts`` (B,G), −1 for padding groups (G = the most
    distinct counts of any image) · ``candidate_channels`` (B,G) · ``scored``
    (B,G) bool · ``avx`` (B,G), NaN where not scored · ``avx_components`` (each
    :class:`~fastcam.metrics.avx.AVXComponents` field as (B,G), NaN/False where
    not scored) · ``best`` (B,) · ``c2`` (B,) · ``seconds`` {"network" (forward
    + 2 backward), "kde", "maps", "avx" (the candidates' masked forwards, SSIM and
    FSIM), "total"}.

    Cost: one forward, two backward passes to the target layer, B·K small
    adaptive KDEs, and one forward plus SSIM/FSIM per scored candidate.
    """

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 upsample: Upsample = "bicubic",
                 minmax_channels: bool = False, batch_size: int = 32,
                 nan_class_sensitive: bool = False, **options: Unpack[CommonOptions]):
        super().__init__(model, target_layers, **options)
        if upsample not in ("bicubic", "bilinear"):
            raise ValueError(f"upsample must be 'bicubic' or 'bilinear', got {upsample!r}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.upsample = upsample
        self.minmax_channels = bool(minmax_channels)
        self.batch_size = int(batch_size)
        self.nan_class_sensitive = bool(nan_class_sensitive)

    # -- steps -------------------------------------------------------------------
    @staticmethod
    def groups(peaks: Tensor) -> tuple[Tensor, Tensor]:
        """Channel groups by peak count: ``(group_of (B,K), counts (B,G))``.
        Image b's groups are its distinct counts in increasing order; ``counts``
        is −1 in padding groups."""
        B = peaks.shape[0]
        P = int(peaks.max()) + 1 if peaks.numel() else 1
        present = torch.zeros(B, P, dtype=torch.bool, device=peaks.device)
        present.scatter_(1, peaks, True)
        gidx = present.long().cumsum(1) - 1                       # group of each count value
        G = int(present.sum(1).max())
        values = torch.arange(P, device=peaks.device).expand(B, P)
        counts = torch.full((B, G + 1), -1, dtype=torch.long, device=peaks.device)
        counts.scatter_(1, torch.where(present, gidx, G), torch.where(present, values, -1))
        return gidx.gather(1, peaks), counts[:, :G]

    def _maps(self, A: Tensor, w: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """(maps (B,G,H,W), low-res ReLU(Σ w A) (B,G,h,w)) for weights (B,G,K)."""
        low = torch.relu(torch.einsum("bgk,bkhw->bghw", w, A))
        if self.upsample == "bilinear":
            return cam_combine(A, w, size), low
        return _bicubic(low, size), low

    @classmethod
    def maps_from_low_res(cls, low_res: Tensor, size: tuple[int, int], options: Optional[dict] = None) -> Tensor:
        """The maps from ``last.low_res``, upsampled as ``options["upsample"]`` says
        (bicubic by default: the min-maxed map, bicubic, clamped to [0, 1])."""
        if (options or {}).get("upsample", "bicubic") == "bilinear":
            return super().maps_from_low_res(low_res, size, options)
        return _bicubic(low_res[:, None], size)[:, 0]

    # -- the call ------------------------------------------------------------------
    def target_scores(self, ctx: CallContext) -> Tensor:
        """c1's softmax probability: the candidates are Grad-CAMs of probabilities
        (the official code's gradients), c1 the target and c2 the runner-up."""
        if ctx.targets.indices is None:
            raise TypeError("ADVISE needs class-index targets (None, an int or B ints), "
                            "not callables: it explains c1 against the runner-up class c2")
        return ctx.logits.float().softmax(1).gather(1, ctx.targets.indices[:, None])[:, 0]

    def maps(self, ctx: CallContext) -> Tensor:
        """Maps (B, H, W) in [0, 1]: the best candidate of each image."""
        seconds = {}
        t_start = ctx.started
        x, activations, logits, resolved = ctx.x, ctx.activations, ctx.logits, ctx.targets
        if len(activations) != 1:
            raise ValueError("ADVISE groups the channels of one target layer; pass one layer")
        if resolved.indices is None:
            raise TypeError("ADVISE needs class-index targets (None, an int or B ints), "
                            "not callables: it explains c1 against the runner-up class c2")
        if logits.shape[1] < 2:
            raise ValueError("ADVISE needs at least 2 classes (c1 and c2)")
        A = activations[0]
        B, K, h, w_ = A.shape
        c1 = resolved.indices
        with torch.enable_grad():
            probs = logits.float().softmax(1)
            c2 = probs.detach().scatter(1, c1[:, None], float("-inf")).argmax(1)
            p2 = probs.gather(1, c2[:, None])[:, 0]
        g2, = ctx.gradients_of(p2)             # first: ctx.gradients frees the graph
        g1, = ctx.gradients                    # of c1's probability (target_scores)
        # the KDE, the candidates' algebra and AVX run in fp32 for a half-precision model
        A, g1, g2 = (at_least_fp32(t.detach()) for t in (A, g1, g2))
        t_net = time.perf_counter()
        seconds["network"] = t_net - t_start

        _, peaks = adaptive_kde(A.reshape(B, K, h * w_), minmax=self.minmax_channels)
        peaks = peaks.to(A.device)
        t_kde = time.perf_counter()
        seconds["kde"] = t_kde - t_net

        size = tuple(x.shape[-2:])
        with torch.no_grad():
            group_of, counts = self.groups(peaks)
            G = counts.shape[1]
            onehot = (group_of[:, None, :] == torch.arange(G, device=A.device)[None, :, None])
            onehot = onehot.to(A.dtype)                                    # (B,G,K)
            alpha = torch.stack([g1.mean(dim=(2, 3)), g2.mean(dim=(2, 3))]).to(A.dtype)
            w = torch.cat([onehot * alpha[0][:, None], onehot * alpha[1][:, None]], 1)
            maps, low = self._maps(A, w, size)
            maps = maps.to(x.dtype)
            maps1, maps2 = maps[:, :G], maps[:, G:]
            low1 = low[:, :G]
            channels = onehot.sum(2).long()
            scored = (counts >= 0) & (channels > 0) & (
                low1.amax(dim=(2, 3)) > low1.amin(dim=(2, 3)))
        t_maps = time.perf_counter()
        seconds["maps"] = t_maps - t_kde

        bi, gi = scored.nonzero(as_tuple=True)
        yc = ctx.scores.detach()
        comps = avx_of_pairs(self.engine, x, maps1[bi, gi], maps2[bi, gi], bi, c1[bi], yc[bi],
                             normalize=self.normalize, batch_size=self.batch_size,
                             nan_class_sensitive=self.nan_class_sensitive)
        table = {}
        for name, v in comps._asdict().items():
            fill = False if v.dtype == torch.bool else float("nan")
            full = torch.full((B, G), fill, dtype=v.dtype, device=x.device)
            full[bi, gi] = v
            table[name] = full
        avx_table = table["avx"]
        best = avx_table.nan_to_num(float("-inf")).argmax(1)
        best = torch.where(scored.any(1), best, -1)
        seconds["avx"] = time.perf_counter() - t_maps

        with torch.no_grad():
            b_idx = torch.arange(B, device=x.device)
            has = (best >= 0)
            pick = best.clamp(min=0)
            out = torch.where(has[:, None, None], maps1[b_idx, pick], 0)
            w_best = torch.where(has[:, None], w[b_idx, pick], 0)
            low_best = torch.where(has[:, None, None], low1[b_idx, pick], 0)
        ctx.weights, ctx.low_res = [w_best], [low_best]
        ctx.extra.update(peaks=peaks, candidates=maps1, candidates_c2=maps2,
                         candidate_peak_counts=counts, candidate_channels=channels,
                         scored=scored, avx=avx_table, avx_components=table, best=best, c2=c2,
                         seconds=seconds)
        seconds["total"] = time.perf_counter() - t_start
        return out

    def __repr__(self) -> str:
        return (f"ADVISE(target_layers={self.target_layers}, normalize={self.normalize}, "
                f"upsample={self.upsample!r}, minmax_channels={self.minmax_channels})")


def _bicubic(low: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, G, h, w) -> (B, G, H, W): min-max per map, bicubic, clamped to [0, 1]
    (the official code's ``imresize(..., 'bicubic')`` of the rescaled map)."""
    return F.interpolate(minmax(low), size=size, mode="bicubic", align_corners=False).clamp_(0, 1)
