"""FEM, the Feature Explanation Method (Fuad et al., IPTA 2020; pytorch-grad-cam's FEM)."""
from __future__ import annotations

from torch import Tensor, nn

from ..inputs import at_least_fp32
from ..network.layers import LayerSpec
from .base import BaseCAM, CallContext, CommonOptions, Unpack


class FEM(BaseCAM):
    """FEM: a channel's weight is the fraction of its positions that are outliers by the
    k-sigma rule, ``w_k = mean_ij 1[A_kij > μ_k + k·σ_k]`` with μ_k, σ_k the spatial mean and
    (population) standard deviation of ``A_k`` (the paper's eq. 1–2; σ with ddof 0 and a
    strict ``>`` as pytorch-grad-cam's code); map ``minmax(up(ReLU(Σ_k w_k A_k)))``.
    Gradient-free (capture "forward"): one forward pass. ``k`` defaults to 2, as there.
    """

    capture = "forward"

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *, k: float = 2.0,
                 **options: Unpack[CommonOptions]):
        super().__init__(model, target_layers, **options)
        if isinstance(k, bool) or not isinstance(k, (int, float)):
            raise TypeError(f"k must be a number, got {type(k).__name__}")
        self.k = float(k)

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        weights = []
        for A in ctx.activations:
            A = at_least_fp32(A.detach())
            mean = A.mean(dim=(2, 3), keepdim=True)
            std = A.std(dim=(2, 3), keepdim=True, correction=0)
            weights.append((A > mean + self.k * std).to(A.dtype).mean(dim=(2, 3)))
        return weights
