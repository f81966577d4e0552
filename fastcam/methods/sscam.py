"""SS-CAM: Smoothed Score-CAM (Wang et al., 2020, arXiv:2006.14255)."""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from ..inputs import at_least_fp32
from ..network.layers import LayerSpec
from ..perturbation.masked_scores import callable_score, class_score
from ..perturbation.sampled_masks import MaskNoise, sampled_mask_scores
from ..perturbation.seeded_noise import Seed, call_seed, check_noise_options, seeded_normal
from .base import BaseCAM, CallContext, CommonOptions, Unpack, minmax_eps

#: TorchCAM's eps of the per-map scaling u
EPS = 1e-8


def sampled_score_weights(cam: BaseCAM, ctx: CallContext, scale: Optional[Tensor],
                          noise_of: Callable[[int, Tensor], Optional[MaskNoise]]) -> list[Tensor]:
    """Score-CAM weights from ``cam.num_samples`` copies per channel (TorchCAM's SSCAM
    and ISCAM): channel k of image b is scored by the mean over the samples s of
    ``y_c(copy(k, s)) − y_c(x)`` (target logits, or the callables' scores) and the
    weights are the softmax of these means over the channels. The copies are
    ``scale_s · (x ⊙ (up(u(A_k)) + δ_{k,s}))`` with u the per-map scaling of
    :func:`~fastcam.methods.base.minmax_eps` (eps 1e-8) at the activation's resolution and up bilinear
    (align_corners=False): no min-max after the upsampling (TorchCAM's order),
    which is why they are built in torch (:mod:`fastcam.perturbation.sampled_masks`)
    rather than by the fused ``mask_blend`` op, whose masks are min-max scaled
    after upsampling. ``noise_of(layer, A)`` gives δ for one layer (or None)."""
    x, targets = ctx.x, ctx.targets
    score_fn = (class_score(targets.indices, "logit") if targets.indices is not None
                else callable_score(targets.callables))
    # the unmasked input's score; a recorded context may not have it, and a per-image
    # constant leaves the softmax over channels unchanged
    baseline = ctx.scores.detach() if ctx.scores is not None else x.new_zeros(x.shape[0])
    weights = []
    for layer, A in enumerate(ctx.activations):
        A = A.detach()
        B, K, h, w = A.shape
        maps = minmax_eps(at_least_fp32(A), EPS).reshape(B * K, h, w)
        index = torch.arange(B, device=A.device).repeat_interleave(K)
        scores = sampled_mask_scores(cam.engine, x, maps, index, cam.num_samples, score_fn,
                                     scale=scale, noise=noise_of(layer, A),
                                     chunk_size=cam.batch_size, normalize=cam.normalize)
        gain = (scores - baseline[index, None]).sum(dim=1) / cam.num_samples
        weights.append(gain.view(B, K).softmax(dim=1))
    ctx.extra["channel_scores"] = [w.detach() for w in weights]
    return weights


class SSCAM(BaseCAM):
    """SS-CAM (Wang et al., 2020), noise on the masks as TorchCAM 0.5.0's ``SSCAM``:

        w_k = softmax_k( 1/N Σ_{s<N} [ y_c(x ⊙ (up(u(A_k)) + δ_{k,s})) − y_c(x) ] ),
        δ_{k,s} ~ N(0, std²) i.i.d. per pixel at the input's resolution,

    map ``minmax(up(ReLU(Σ_k w_k A_k)))`` (the paper's eq. with TorchCAM's
    normalisation u, see :func:`sampled_score_weights`). The noise is not clipped
    (TorchCAM does not), one mask noise per channel and sample shared by the
    image's colour channels.

    Args:
        batch_size: copies per forward (the chunk size; memory bound).
        num_samples: N, noisy copies per channel (TorchCAM's default 35).
        std: σ of the noise (TorchCAM's default 2.0).
        seed: None (drawn from torch's global generator at each call), an int, or a
            ``torch.Generator`` (each call draws its seed from it). With an int,
            δ_{k,s} is drawn from a generator seeded by (seed, s, k), so the same
            seed gives the same maps whatever ``batch_size`` and the batch (an
            image gets the same noise alone or in a batch). ``last.extra["seed"]``
            is the seed a call used.
    """

    capture = "forward"

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 batch_size: int = 32, num_samples: int = 35, std: float = 2.0,
                 seed: Seed = None, **options: Unpack[CommonOptions]):
        check_noise_options(num_samples, std, seed, batch_size)
        super().__init__(model, target_layers, **options)
        self.batch_size = batch_size
        self.num_samples = num_samples
        self.std = float(std)
        self.seed = seed

    def _noise(self, image: Tensor, channel: Tensor, sample: Tensor,
               shape: tuple[int, int], like: Tensor) -> Tensor:
        """(n, H, W) mask noise of the copies (image, channel, sample); a function of
        (seed, sample, channel) only. Tests replace it on an instance to feed
        TorchCAM's noise."""
        keys = sample.to(torch.long) * (1 << 24) + channel.to(torch.long)
        return seeded_normal(keys, shape, self.std, self._seed, like.device)

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        self._seed = call_seed(self.seed)
        ctx.extra["seed"] = self._seed
        size, x = ctx.size, ctx.x

        def noise_of(layer: int, A: Tensor) -> MaskNoise:
            K = A.shape[1]
            return lambda row, s: self._noise(row // K, row % K, s, size, x)
        return sampled_score_weights(self, ctx, None, noise_of)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(target_layers={self.target_layers}, batch_size="
                f"{self.batch_size}, num_samples={self.num_samples}, std={self.std}, "
                f"seed={self.seed})")
