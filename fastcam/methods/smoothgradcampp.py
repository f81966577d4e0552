"""Smooth Grad-CAM++ (Omeiza et al., 2019, arXiv:1908.01224)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..inputs import at_least_fp32, check_finite
from ..network.layers import LayerSpec
from ..perturbation.seeded_noise import Seed, call_seed, check_noise_options, seeded_normal
from ..progress import track
from ..targets import Targets
from .base import BaseCAM, CallContext, CommonOptions, Unpack, gradients


class SmoothGradCAMpp(BaseCAM):
    """Smooth Grad-CAM++: Grad-CAM++'s pixel weights with the gradient powers
    averaged over N noisy copies ``x + δ_s`` of the model's input (SmoothGrad),
    as TorchCAM 0.5.0's ``SmoothGradCAMpp`` (its corrected numerator):

        D2 = 1/N Σ_s g_s²,  D3 = 1/N Σ_s g_s³,   g_s = ∂y_c(x + δ_s)/∂A(x + δ_s),
        a_kij = D2 / (2·D2 + Σ_ab A_kab·D3_kab + 1e-8),
        w_k = Σ_ij a_kij · ReLU(G_kij),  map = minmax(up(ReLU(Σ_k w_k A'_k))),

    with δ_s ~ N(0, std²) per pixel and channel, y_c the target logit, A the
    clean activation in the denominator, G = 1/N Σ_s g_s (the paper's averaged
    first derivative) and A' = A, the clean activation. TorchCAM's own choice
    (G = g_N and A' = A(x + δ_N), the *last* noisy copy's, which its hooks keep):
    :class:`fastcam.compat.numerics.TorchCAMSmoothGradCAMpp`.

    The noise is added to what the model sees (after ``normalize``, like
    TorchCAM, whose input is the model's). The B·N noisy copies run
    ``batch_size`` at a time through ``self.engine`` (one forward and one backward
    to the target layers per chunk).

    Args:
        num_samples: N (TorchCAM's default 4). std: σ (TorchCAM's default 0.3).
        batch_size: noisy copies per pass (the chunk size; memory bound).
        seed: None (drawn from torch's global generator at each call), an int, or a
            ``torch.Generator`` (each call draws its seed from it). With an int,
            δ_s is drawn from a generator seeded by (seed, s), so the same seed gives
            the same maps whatever ``batch_size`` and the batch (an image gets the
            same noise alone or in a batch). ``last.extra["seed"]``: the seed used.
    """

    capture = "forward"
    eps: float = 1e-8

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 num_samples: int = 4, std: float = 0.3, batch_size: int = 32,
                 seed: Seed = None, **options: Unpack[CommonOptions]):
        check_noise_options(num_samples, std, seed, batch_size)
        super().__init__(model, target_layers, **options)
        self.num_samples = num_samples
        self.std = float(std)
        self.batch_size = batch_size
        self.seed = seed

    def _noise(self, image: Tensor, sample: Tensor, shape: tuple[int, ...],
               like: Tensor) -> Tensor:
        """(n, C, H, W) input noise of the copies (image, sample); a function of
        (seed, sample) only. Tests replace it on an instance to feed TorchCAM's noise."""
        return seeded_normal(sample.to(torch.long), shape, self.std, self._seed, like.device)

    def _copy_targets(self, targets: Targets, image: Tensor) -> Targets:
        if targets.indices is not None:
            return Targets(targets.indices[image], None)
        return Targets(None, [targets.callables[i] for i in image.tolist()])

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        return self.weights_from(ctx, self.noisy_gradients(ctx))

    def noisy_gradients(self, ctx: CallContext) -> "NoisyGradients":
        """The gradient moments over the N noisy copies of every image, per layer."""
        self._seed = call_seed(self.seed)
        ctx.extra["seed"] = self._seed
        x, N, B = ctx.x_model.detach(), self.num_samples, ctx.x.shape[0]
        clean = [at_least_fp32(A.detach()) for A in ctx.activations]
        g2 = [torch.zeros_like(A) for A in clean]
        g3 = [torch.zeros_like(A) for A in clean]
        g1 = [torch.zeros_like(A) for A in clean]          # Σ_s g_s
        g_last = [torch.zeros_like(A) for A in clean]      # g_N
        last = [torch.zeros_like(A) for A in clean]        # A(x + δ_N)
        image_of = torch.arange(B, device=x.device).repeat_interleave(N)
        sample_of = torch.arange(N, device=x.device).repeat(B)
        for a in track(range(0, B * N, self.batch_size), unit="chunk"):
            image, sample = image_of[a:a + self.batch_size], sample_of[a:a + self.batch_size]
            noisy = x[image] + self._noise(image, sample, tuple(x.shape[1:]), x).to(x.dtype)
            acts, logits = self.engine.capture(noisy, ctx.layers, grad=True,
                                               transform=self.reshape_transform)
            logits = at_least_fp32(logits)
            check_finite(logits, "the model's output on the noisy copies")
            scores = self._copy_targets(ctx.targets, image).scores(logits)
            final = sample == N - 1
            for i, (A, g) in enumerate(zip(acts, gradients(scores, acts))):
                g = at_least_fp32(g.detach())
                g2[i].index_add_(0, image, g * g)
                g3[i].index_add_(0, image, g * g * g)
                g1[i].index_add_(0, image, g)
                g_last[i][image[final]] = g[final]
                last[i][image[final]] = at_least_fp32(A.detach()[final])
        return NoisyGradients(clean=clean, d2=[g / N for g in g2], d3=[g / N for g in g3],
                              mean=[g / N for g in g1], last=g_last, last_activations=last)

    def weights_from(self, ctx: CallContext, noisy: "NoisyGradients") -> list[Tensor]:
        """The paper's weights: G the averaged gradient, the clean activations."""
        return [self.pixel_weighted(d2, d3, A, G)
                for d2, d3, A, G in zip(noisy.d2, noisy.d3, noisy.clean, noisy.mean)]

    def pixel_weighted(self, d2: Tensor, d3: Tensor, A: Tensor, G: Tensor) -> Tensor:
        """``w_k = Σ_ij a_kij · ReLU(G_kij)``, ``a = D2 / (2·D2 + Σ_ab A_kab·D3_kab + eps)``."""
        alpha = d2 / (2 * d2 + (d3 * A).sum(dim=(2, 3), keepdim=True) + self.eps)
        return (alpha * torch.relu(G)).sum(dim=(2, 3))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(target_layers={self.target_layers}, num_samples="
                f"{self.num_samples}, std={self.std}, batch_size={self.batch_size}, "
                f"seed={self.seed})")


@dataclass
class NoisyGradients:
    """Per layer (B, K, h, w), float32: the clean activations A, the moments
    D2 = 1/N Σ_s g_s², D3 = 1/N Σ_s g_s³, the mean gradient 1/N Σ_s g_s, and the
    last copy's gradient g_N and activation A(x + δ_N) (what TorchCAM's hooks
    hold after its loop: :class:`fastcam.compat.numerics.TorchCAMSmoothGradCAMpp`)."""

    clean: list[Tensor]
    d2: list[Tensor]
    d3: list[Tensor]
    mean: list[Tensor]
    last: list[Tensor]
    last_activations: list[Tensor]
