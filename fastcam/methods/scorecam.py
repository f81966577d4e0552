"""Score-CAM (Wang et al., CVPR-W 2020)."""
from __future__ import annotations

from typing import ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn

from ..network.layers import LayerSpec
from ..ops import cam_combine
from ..perturbation.distinct_masks import distinct_masks
from ..perturbation.masked_scores import callable_score, class_score, masked_scores
from .base import BaseCAM, CallContext, CommonOptions, Unpack, minmax

Mode = Literal["default", "official"]


class ScoreNumerics(NamedTuple):
    """What a Score-CAM mode computes."""

    score: Literal["logit", "probability"]   # the target score of each masked copy
    channel_softmax: bool                    # α = softmax_k(s) (else α = s)
    align_corners: bool                      # the masks' bilinear convention
    eps: float                               # in the mask's min-max denominator
    skip_constant: bool                      # constant maps get α = 0, no forward


class ScoreCAM(BaseCAM):
    """Score-CAM: channel k is scored by the model on the input masked by its
    own upsampled, min-max scaled activation, ``s_k = f_c(X ∘ minmax(up(A_k)))``
    (paper eq. 3–5); the map is ``minmax(up(ReLU(Σ_k α_k A_k)))``.

    The K masked copies of each image are built chunk by chunk by a fused kernel
    and streamed through the model (memory: ``batch_size`` copies), scores kept
    on the device.

    Modes:
      - ``"default"``: s_k = target logit, α = softmax_k(s) (softmax over channels).
      - ``"official"``: as the authors' code — s_k = softmax probability of the
        target class, α = s (no channel softmax), constant maps skipped (α = 0),
        and the map is ``minmax(ReLU(Σ_k α_k up(A_k)))`` (ReLU after upsampling).

    pytorch-grad-cam's numerics (its ``"pytorch-grad-cam"`` mode):
    :class:`fastcam.compat.numerics.PytorchGradCAMScoreCAM`.

    Copies found equal run once (:func:`fastcam.perturbation.distinct_masks.distinct_masks`):
    channels of an image whose activation maps are bitwise identical share one
    forward, and so do its constant channels whose copy is bitwise the all-zero
    channel's (the min-max of a constant map is 0, so the copy is black; a non-zero
    constant qualifies only where the op builds exactly that copy from it, which
    with ``align_corners=True`` it often does not). Different non-constant maps
    with equal copies (A and 2A) are not looked for and run separately. The ``"official"`` mode runs no constant
    channel at all (their α is 0). Scores are spread back to every channel, so the
    maps are those of K forwards per image, up to the model's batch-size-dependent
    rounding. ``last.extra["masked_forwards"]``: per layer, the (B,) number of masked
    copies the model ran for each image. Setting the attribute ``dedupe = False``
    runs all K copies of every image instead.

    Args:
        batch_size: masked copies per forward (the chunk size; pytorch-grad-cam's
            ``batch_size`` attribute).
    """

    capture = "forward"
    #: run each distinct masked copy once (False: every channel's copy)
    dedupe: bool = True
    #: the modes' numerics
    modes: ClassVar[dict[str, ScoreNumerics]] = {
        "default": ScoreNumerics("logit", True, False, 0.0, False),
        "official": ScoreNumerics("probability", False, False, 0.0, True),
    }

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 batch_size: int = 32, mode: Mode = "default", **options: Unpack[CommonOptions]):
        super().__init__(model, target_layers, **options)
        if mode not in self.modes:
            raise ValueError(f"mode must be one of {sorted(self.modes)}, got {mode!r}")
        self.mode = mode
        self.batch_size = batch_size

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        score, channel_softmax, align_corners, eps, skip_constant = self.modes[self.mode]
        x, targets = ctx.x, ctx.targets
        if targets.indices is not None:
            score_fn = class_score(targets.indices, score)
        elif score == "logit":
            score_fn = callable_score(targets.callables)
        else:
            raise ValueError("the 'official' mode scores class probabilities; it needs "
                             "class-index targets, not callables")
        weights, forwards = [], []
        for A in ctx.activations:
            A = A.detach()
            B, K, h, w = A.shape
            maps = A.reshape(B * K, h, w).to(x.dtype)
            index = torch.arange(B, device=A.device).repeat_interleave(K)
            scored = torch.arange(B * K, device=A.device)     # channels whose score is used
            if skip_constant:                                  # the others get α = 0
                flat = A.reshape(B * K, h * w)
                scored = scored[flat.amax(1) > flat.amin(1)]
            options = dict(chunk_size=self.batch_size, normalize=self.normalize, eps=eps,
                           align_corners=align_corners)
            run, spread = scored, None
            if self.dedupe:
                classes = distinct_masks(x, maps[scored], index[scored], **options)
                run, spread = scored[classes.representatives], classes.inverse
            scores = masked_scores(self.engine, x, maps[run], index[run], score_fn, **options)
            s = torch.zeros(B * K, dtype=scores.dtype, device=A.device)
            s[scored] = scores if spread is None else scores[spread]
            forwards.append(torch.bincount(index[run], minlength=B))
            s = s.view(B, K)
            weights.append(s.softmax(dim=1) if channel_softmax else s)
        ctx.extra["masked_forwards"] = forwards
        ctx.extra["channel_scores"] = [w.detach() for w in weights]
        return weights

    def combine(self, A: Tensor, w: Tensor, size: tuple[int, int]) -> Tensor:
        if self.mode != "official":
            return super().combine(A, w, size)
        # The official code applies the ReLU after upsampling: ReLU and scaling
        # moved after the (linear) upsampling.
        return minmax(torch.relu(cam_combine(A, w.to(A.dtype), size, relu=False, normalize=False)))
