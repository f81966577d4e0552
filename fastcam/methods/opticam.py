"""Opti-CAM (Zhang, Torres, Sicre, Avrithis, Ayache, CVIU 2024, arXiv 2301.07002)."""
from __future__ import annotations

import math
import numbers
from typing import Literal, Optional

import torch
from torch import Tensor, nn

from ..inputs import check_finite, normalizer
from ..network.layers import LayerSpec
from ..ops import cam_combine
from ..progress import track
from ..targets import Targets
from .base import BaseCAM, CallContext, CommonOptions, Unpack, channel_sum

Stop = Optional[Literal["paper", "official"]]
MaskNorm = Literal["minmax", "max", "sigmoid"]
Objective = Literal["logit", "diff"]

_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8   # torch.optim.Adam's defaults, as the paper uses Adam


class OptiCAM(BaseCAM):
    """Opti-CAM: the saliency map is optimised so that the masked image keeps the
    class score high (paper eq. 6–9).

    ``S(u) = n(up(Σ_k softmax(u)_k A_k))`` with A the target layer's activation
    (detached, ReLU'd) and ``n`` the normalisation (``mask_norm``: "minmax", the
    paper's default; "max" = divide by the maximum; "sigmoid"), maximising the
    target logit ``y_c(normalize(x ⊙ S(u)))`` over u ∈ R^K with Adam
    (lr 0.1, at most 100 iterations: the paper's values). u starts constant
    (softmax(u) uniform). ``objective="diff"`` minimises ``|y_c(x) − y_c(x ⊙ S)|``
    instead (the paper's ablation). Masks multiply the pixel-space image before
    mean/std normalisation when ``normalize`` is given (the paper's protocol).

    A batch is B independent problems: the loss is a sum of per-image terms, Adam
    is elementwise and stopping is decided per image, so batching never changes
    an image's result. Stopping (``stop``): "paper" stops an image when its loss
    changes by less than 1e-10; "official" (the authors' code) checks every
    max_iter/10 iterations and stops an image whose loss rose since the previous
    check; None runs every iteration.

    Per iteration: one forward and one backward to the input of the whole model
    for the batch, the model's parameters excluded from autograd, and the CAM
    algebra through the fused ``cam_combine`` (forward and backward).
    The last call's record holds ``extra["u"]``, ``extra["iterations"]`` (B,),
    ``extra["score_initial"]`` and ``extra["score_final"]`` (target score of the
    masked image at the first and last u).
    """

    capture = "forward"

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 max_iter: int = 100, lr: float = 0.1,
                 stop: Stop = "paper", mask_norm: MaskNorm = "minmax",
                 objective: Objective = "logit", **options: Unpack[CommonOptions]):
        super().__init__(model, target_layers, **options)
        if stop not in ("paper", "official", None):
            raise ValueError(f"stop must be 'paper', 'official' or None, got {stop!r}")
        if mask_norm not in ("minmax", "max", "sigmoid"):
            raise ValueError(f"mask_norm must be 'minmax', 'max' or 'sigmoid', got {mask_norm!r}")
        if objective not in ("logit", "diff"):
            raise ValueError(f"objective must be 'logit' or 'diff', got {objective!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 0:
            raise ValueError(f"max_iter must be an integer >= 0, got {max_iter!r}")
        if not isinstance(lr, numbers.Real) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        max_iter, lr = int(max_iter), float(lr)
        self.max_iter, self.lr, self.stop = max_iter, lr, stop
        self.mask_norm, self.objective = mask_norm, objective

    def mask(self, A: Tensor, u: Tensor, size: tuple[int, int]) -> Tensor:
        """S(u) (B, H, W), differentiable w.r.t. u."""
        w = torch.softmax(u, dim=1)
        if self.mask_norm == "minmax":
            return cam_combine(A, w, size, relu=False, normalize=True)
        s = cam_combine(A, w, size, relu=False, normalize=False)
        if self.mask_norm == "max":
            peak = s.amax(dim=(1, 2), keepdim=True)
            return torch.where(peak > 0, s / torch.where(peak > 0, peak, 1), 0)
        return torch.sigmoid(s)

    def maps(self, ctx: CallContext) -> Tensor:
        if len(ctx.activations) != 1:
            raise ValueError("Opti-CAM optimises one target layer's weights; pass one layer")
        A = torch.relu(ctx.activations[0]).float()     # the CAM algebra and Adam run in fp32
        u, iterations, first, final, maps = self._optimise(ctx.x, A, ctx.targets,
                                                           ctx.scores.float())
        check_finite(u, "Opti-CAM's optimised weights u")
        w = torch.softmax(u, dim=1)
        ctx.activations, ctx.weights = [A], [w]
        ctx.low_res = [channel_sum(A, w)]
        ctx.extra.update(u=u, iterations=iterations, score_initial=first, score_final=final)
        return maps

    def _loss(self, masked_scores: Tensor, clean: Tensor) -> Tensor:
        if self.objective == "logit":
            return -masked_scores
        return (clean - masked_scores).abs()

    def _optimise(self, x: Tensor, A: Tensor, targets: Targets, clean: Tensor):
        B, K = A.shape[:2]
        size = tuple(x.shape[-2:])
        norm = normalizer(self.normalize, x)
        u = torch.ones(B, K, dtype=A.dtype, device=A.device)
        m, v = torch.zeros_like(u), torch.zeros_like(u)
        steps = torch.zeros(B, dtype=torch.long, device=A.device)
        active = torch.ones(B, dtype=torch.bool, device=A.device)
        prev_loss = torch.full((B,), float("inf"), dtype=A.dtype, device=A.device)
        check_loss = prev_loss.clone()
        check_every = max(1, self.max_iter // 10)
        first: Optional[Tensor] = None
        with self.engine.frozen():
            for it in track(range(self.max_iter), unit="iter"):
                with torch.enable_grad():
                    u_ = u.detach().requires_grad_(True)
                    S = self.mask(A, u_, size)
                    logits = self.engine.forward(norm(x * S[:, None].to(x.dtype)), grad=True)
                    scores = targets.scores(logits).float()
                    loss = self._loss(scores, clean)
                    grad, = torch.autograd.grad(loss.sum(), u_)
                loss = loss.detach()
                if first is None:
                    first = scores.detach()
                if self.stop == "paper":
                    active &= (loss - prev_loss).abs() >= 1e-10
                elif self.stop == "official" and it > 0 and it % check_every == 0:
                    active &= ~(loss > check_loss)
                    check_loss = torch.where(active, loss, check_loss)
                if self.stop == "official" and it == 0:
                    check_loss = loss.clone()
                prev_loss = loss
                if self.stop is not None and not bool(active.any()):
                    break
                # Adam (torch.optim.Adam's update), only for images still running
                steps += active.long()
                a = active[:, None]
                m = torch.where(a, _BETA1 * m + (1 - _BETA1) * grad, m)
                v = torch.where(a, _BETA2 * v + (1 - _BETA2) * grad * grad, v)
                t = steps.clamp(min=1).to(u.dtype)[:, None]
                denom = (v.sqrt() / torch.sqrt(1 - _BETA2 ** t)) + _ADAM_EPS
                step_size = self.lr / (1 - _BETA1 ** t)
                u = torch.where(a, u - step_size * m / denom, u)
        with torch.no_grad():
            maps = self.mask(A, u, size)
            final = targets.scores(self.engine.forward(norm(x * maps[:, None].to(x.dtype)))).float()
        if first is None:
            first = final
        return u, steps, first, final, maps
