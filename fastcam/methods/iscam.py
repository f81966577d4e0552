"""IS-CAM: Integrated Score-CAM (Naidu et al., 2020, arXiv:2010.03023)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..network.layers import LayerSpec
from ..perturbation.seeded_noise import check_noise_options
from .base import BaseCAM, CallContext, CommonOptions, Unpack
from .sscam import sampled_score_weights


class ISCAM(BaseCAM):
    """IS-CAM as TorchCAM 0.5.0's ``ISCAM``: the masked copy of channel k is
    scaled along a path, ``c_s · (x ⊙ up(u(A_k)))`` for s = 1..N, and

        w_k = softmax_k( 1/N Σ_s [ y_c(c_s · x ⊙ up(u(A_k))) − y_c(x) ] ),

    with TorchCAM's cumulative coefficients ``c_s = Σ_{j=1}^{s} j/N`` (so c_N =
    (N+1)/2 > 1; the paper writes ``M_i = Σ_{j<i} (j/N)·mask ⊙ X``), u the per-map
    scaling ``(m − min)/(max − min + 1e-8)`` (:func:`fastcam.methods.base.minmax_eps`); map
    ``minmax(up(ReLU(Σ_k w_k A_k)))``. Deterministic (no noise). The copies:
    :func:`fastcam.methods.sscam.sampled_score_weights`.

    Args:
        batch_size: copies per forward (the chunk size; memory bound).
        num_samples: N, the path's steps (TorchCAM's default 10).
    """

    capture = "forward"

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 batch_size: int = 32, num_samples: int = 10, **options: Unpack[CommonOptions]):
        check_noise_options(num_samples, batch_size=batch_size)
        super().__init__(model, target_layers, **options)
        self.batch_size = batch_size
        self.num_samples = num_samples

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        return sampled_score_weights(self, ctx, self.sample_scales(ctx.x.device),
                                     lambda layer, A: None)

    def sample_scales(self, device: torch.device) -> Tensor:
        """(num_samples,) the copies' factors c_s."""
        coeffs, c = [], 0.0
        for s in range(self.num_samples):      # accumulated in double, as TorchCAM
            c += (s + 1) / self.num_samples
            coeffs.append(c)
        return torch.tensor(coeffs, dtype=torch.float64, device=device)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(target_layers={self.target_layers}, "
                f"batch_size={self.batch_size}, num_samples={self.num_samples})")
