"""IS-CAM: Integrated Score-CAM (Naidu et al., 2020, arXiv:2010.03023)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..engine import Precision
from ..inputs import Normalize
from ..network.layers import LayerSpec
from .sscam import SampledScoreCAM


class ISCAM(SampledScoreCAM):
    """IS-CAM as TorchCAM 0.5.0's ``ISCAM``: the masked copy of channel k is
    scaled along a path, ``c_s · (x ⊙ up(u(A_k)))`` for s = 1..N, and

        w_k = softmax_k( 1/N Σ_s [ y_c(c_s · x ⊙ up(u(A_k))) − y_c(x) ] ),

    with TorchCAM's cumulative coefficients ``c_s = Σ_{j=1}^{s} j/N`` (so c_N =
    (N+1)/2 > 1; the paper writes ``M_i = Σ_{j<i} (j/N)·mask ⊙ X``), u the per-map
    scaling of :func:`fastcam.methods.sscam.unit_maps`; map
    ``minmax(up(ReLU(Σ_k w_k A_k)))``. Deterministic (no noise).

    Args:
        batch_size: copies per forward (the chunk size; memory bound).
        num_samples: N, the path's steps (TorchCAM's default 10).
    """

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 normalize: Normalize = None, batch_size: int = 32, num_samples: int = 10,
                 precision: Precision = "fp32", compile: bool = False):
        super().__init__(model, target_layers, normalize=normalize, batch_size=batch_size,
                         num_samples=num_samples, precision=precision, compile=compile)

    def sample_scales(self, device: torch.device) -> Tensor:
        coeffs, c = [], 0.0
        for s in range(self.num_samples):      # accumulated in double, as TorchCAM
            c += (s + 1) / self.num_samples
            coeffs.append(c)
        return torch.tensor(coeffs, dtype=torch.float64, device=device)
