"""Shap-CAM (Zheng, Wang, Zhou, Lu, ECCV 2022, arXiv 2208.03608).

Not pytorch-grad-cam's ``ShapleyCAM`` (Cai 2025), which is a different,
gradient/Hessian-based method.
"""
from __future__ import annotations

import warnings
from typing import Literal, Optional

import torch
from torch import Tensor, nn

from ..inputs import check_finite
from ..network.layers import LayerSpec
from ..network.linear_head import find_linear_head
from ..ops import cam_combine
from ..perturbation.coalition_scores import (HeadTables, general_worths, head_worths, linear_macs,
                                    window_weights)
from ..perturbation.masked_scores import callable_score, class_score
from .base import BaseCAM, CallContext, CommonOptions, Unpack


EMPTY_GAME_RTOL = 1e-5   # |v(all) − v(∅)| ≤ this · max(1, |v(all)|): an empty game


class ShapCAM(BaseCAM):
    """Shap-CAM: the Shapley values of the spatial positions of the target layer.

    Players are the n = h·w positions of A (a player is the column A[:, i, j]).
    A coalition S keeps its columns and replaces the others by a baseline — 0
    (``baseline="zero"``, default: the reference LIFT-CAM's DeepLIFT uses) or
    the per-channel spatial mean of A (``baseline="mean"``) — and its worth v(S)
    is the target class's softmax probability from the tail
    (``worth="probability"``, the paper's class confidence) or its logit.

    Why zero: on a head of global average pooling + a linear layer (ResNet,
    EfficientNet, most CNNs) the mean baseline leaves the pooled vector of the
    empty coalition equal to the full one, so v(∅) = v(all), the Shapley values
    sum to 0 (efficiency, eq. 3) and the ReLU keeps only the positions above
    average. Every permutation computes v(∅) and v(all); when they agree within
    ``1e-5·max(1, |v(all)|)`` on an image, a ``UserWarning`` names the images.
    With the zero baseline and ``worth="logit"`` on such a head the game is
    linear and φ_ij = W_c·A[:, i, j]/n exactly: the map is CAM's.
    Shapley values are estimated by permutation sampling (paper eq. 5–7): a
    permutation π gives the n + 1 nested coalitions ∅ ⊂ {π_1} ⊂ … ⊂ all, and
    ``φ[π_t] += v_t − v_{t−1}``, averaged over permutations (with
    ``antithetic=True`` each π comes with its reverse). The map is
    ``minmax(up(ReLU(φ)))``.

    Stopping: at most ``permutations`` per image, and, with ``std_error``, an
    image stops once the largest standard error of its players' estimates is at
    most that (checked every ``round_size`` permutations). Seeded: the same seed
    gives the same map on the same backend.

    The m·(n+1) tail evaluations per image never materialise all masked
    activations: chunks of ``chunk_size`` coalitions are built on the fly
    (general path), or — when the tail starts with a linear map of the
    activation (GAP + fc, flatten + fc, 2×2 max-pool + flatten + fc) — the first
    layer's pre-activation is accumulated player by player and only the rest of
    the tail runs (``fast_path="auto"``; "never" forces the general path), in
    chunks of as many pre-activation rows as fit in the memory of
    ``chunk_size`` masked activations.

    The record's ``extra`` holds ``phi`` (B,h,w), ``std_error`` (B,),
    ``permutations`` (B,), ``path`` and ``macs_per_coalition``.
    """

    capture = "split"

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 permutations: int = 16,
                 std_error: Optional[float] = None, baseline: Literal["mean", "zero"] = "zero",
                 worth: Literal["probability", "logit"] = "probability", antithetic: bool = False,
                 seed: int = 0, chunk_size: int = 128, round_size: int = 4,
                 fast_path: Literal["auto", "never"] = "auto", **options: Unpack[CommonOptions]):
        super().__init__(model, target_layers, **options)
        if self.target_layers is not None and len(self.target_layers) != 1:
            raise ValueError("Shap-CAM takes one target layer")
        if baseline not in ("mean", "zero"):
            raise ValueError(f"baseline must be 'mean' or 'zero', got {baseline!r}")
        if worth not in ("probability", "logit"):
            raise ValueError(f"worth must be 'probability' or 'logit', got {worth!r}")
        if fast_path not in ("auto", "never"):
            raise ValueError(f"fast_path must be 'auto' or 'never', got {fast_path!r}")
        if permutations < 1 or (antithetic and permutations % 2):
            raise ValueError("permutations must be >= 1 (and even with antithetic=True)")
        if std_error is not None and std_error <= 0:
            raise ValueError("std_error must be positive")
        self.permutations, self.std_error = permutations, std_error
        self.baseline, self.worth, self.antithetic = baseline, worth, antithetic
        self.seed, self.chunk_size, self.fast_path = seed, chunk_size, fast_path
        self.round_size = max(2 if antithetic else 1, round_size + (round_size % 2 if antithetic else 0))

    def _permutations(self, count: int, n: int, gen: torch.Generator, device) -> Tensor:
        if not self.antithetic:
            return torch.stack([torch.randperm(n, generator=gen) for _ in range(count)]).to(device)
        half = torch.stack([torch.randperm(n, generator=gen) for _ in range(count // 2)])
        return torch.stack([half, half.flip(1)], dim=1).reshape(count, n).to(device)

    def maps(self, ctx: CallContext) -> Tensor:
        if len(ctx.splits) != 1:
            raise ValueError("Shap-CAM takes one target layer")
        (prefix, tail), = ctx.splits
        A, x_model, resolved = ctx.activations[0], ctx.x_model, ctx.targets
        B, K, h, w = A.shape
        n = h * w
        head = find_linear_head(tail, h, w) if self.fast_path == "auto" else None
        per_image_prefix = tail.n_sides > 0 or tail.mode == "hooks"
        base_all = A.mean(dim=(2, 3)) if self.baseline == "mean" else torch.zeros(B, K, dtype=A.dtype, device=A.device)
        phi = torch.zeros(B, n, dtype=torch.float64, device=A.device)
        se = torch.zeros(B, dtype=torch.float64, device=A.device)
        used = torch.zeros(B, dtype=torch.long, device=A.device)
        empty_game = []                      # images whose v(∅) equals v(all)
        for b in range(B):
            if resolved.indices is not None:
                score_fn = class_score(resolved.indices[b:b + 1], self.worth)
            elif self.worth == "logit":
                score_fn = callable_score(resolved.callables[b:b + 1])
            else:
                raise ValueError("worth='probability' needs class-index targets, not callables")
            if per_image_prefix:             # the tail reuses this image's prefix values
                self.engine.run_prefix(prefix, x_model[b:b + 1])
            Ab, base = A[b:b + 1], base_all[b]
            tables = None
            if head is not None:
                ww = None
                if head.pool == "max":   # cached across images and explainers, per weight
                    ww = window_weights(head, K, (h // head.k) * (w // head.k))
                tables = HeadTables(head, Ab, base, ww)
            gen = torch.Generator().manual_seed(self.seed)   # per image: batching changes nothing
            total = torch.zeros(n, dtype=torch.float64, device=A.device)
            total_sq = torch.zeros(n, dtype=torch.float64, device=A.device)
            count = 0
            while count < self.permutations:
                size = min(self.round_size if self.std_error else self.permutations,
                           self.permutations - count)
                perms = self._permutations(size, n, gen, A.device)
                with torch.inference_mode():
                    if tables is not None:
                        # a pre-activation row is far smaller than a masked activation:
                        # as many rows as fit in chunk_size activations' memory
                        rows = max(self.chunk_size, self.chunk_size * K * h * w // head.linear.out_features)
                        v = head_worths(head, tables, perms, score_fn, rows, engine=self.engine)
                    else:
                        v = general_worths(self.engine.part(tail), Ab, base, perms, score_fn,
                                           self.chunk_size)
                if count == 0:
                    v_none, v_all = float(v[0, 0]), float(v[0, -1])
                    if abs(v_all - v_none) <= EMPTY_GAME_RTOL * max(1.0, abs(v_all)):
                        empty_game.append(b)
                marg = torch.zeros(size, n, dtype=torch.float64, device=A.device)
                marg.scatter_(1, perms, (v[:, 1:] - v[:, :-1]).double())
                if self.antithetic:          # a pair's average is one sample
                    marg = marg.view(size // 2, 2, n).mean(1)
                total += marg.sum(0)
                total_sq += (marg * marg).sum(0)
                count += size
                samples = count // 2 if self.antithetic else count
                mean = total / samples
                if samples > 1:
                    var = (total_sq / samples - mean * mean).clamp(min=0) * samples / (samples - 1)
                    se[b] = (var / samples).sqrt().max()
                else:
                    se[b] = float("inf")
                if self.std_error is not None and se[b] <= self.std_error:
                    break
            phi[b] = total / (count // 2 if self.antithetic else count)
            used[b] = count
        if empty_game:
            advice = (" On a global-average-pool + linear head use baseline='zero'."
                      if self.baseline != "zero" else "")
            warnings.warn(
                f"Shap-CAM: baseline={self.baseline!r} makes the empty coalition worth as much as "
                f"the full one (v(∅) = v(all) within {EMPTY_GAME_RTOL:g}·max(1, |v(all)|)) on "
                f"image(s) {empty_game}: the Shapley values sum to 0 and the map keeps only the "
                f"positions above average.{advice}", UserWarning, stacklevel=3)
        check_finite(phi, "Shap-CAM's Shapley values (the tail's worths)")
        phi_map = phi.view(B, 1, h, w).to(A.dtype)
        with torch.no_grad():
            maps = cam_combine(phi_map, torch.ones(B, 1, dtype=A.dtype, device=A.device), ctx.size)
        macs = linear_macs(head.rest_modules) + head.linear.out_features if head is not None else None
        ctx.low_res = [torch.relu(phi_map[:, 0])]
        ctx.extra.update(phi=phi.view(B, h, w), std_error=se, permutations=used,
                         path="linear-head" if head is not None else "general",
                         macs_per_coalition=macs)
        return maps
