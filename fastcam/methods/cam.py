"""CAM (Zhou et al., CVPR 2016)."""
from __future__ import annotations

from typing import Optional, Union

from torch import Tensor, nn

from ..network.layers import LayerSpec, resolve_layers
from .base import BaseCAM, CallContext, CommonOptions, Unpack


class CAM(BaseCAM):
    """Class activation mapping: ``M_c = Σ_k W[c,k] A_k`` (paper eq. 2), for networks
    whose head is global average pooling followed by one linear layer W; shown as
    ``minmax(up(ReLU(M_c)))``. No gradient: one forward under inference mode.

    Args:
        fc_layer: the linear layer after the pooling (module or dotted name);
            None -> the last ``nn.Linear`` of the model whose ``in_features``
            equals the target layer's channel count.
    Targets must be class indices (CAM reads row c of W).
    """

    capture = "forward"

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 fc_layer: Union[None, str, nn.Module] = None, **options: Unpack[CommonOptions]):
        super().__init__(model, target_layers, **options)
        if self.target_layers is not None and len(self.target_layers) != 1:
            raise ValueError("CAM takes exactly one target layer (the one before the pooling)")
        self.fc_layer: Optional[nn.Module] = None if fc_layer is None else resolve_layers(model, fc_layer)[0]
        if self.fc_layer is not None and not isinstance(self.fc_layer, nn.Linear):
            raise ValueError(f"fc_layer must be an nn.Linear, got {type(self.fc_layer).__name__}")

    def _find_fc(self, K: int) -> nn.Linear:
        linears = [m for m in self.model.modules() if isinstance(m, nn.Linear) and m.in_features == K]
        if not linears:
            raise ValueError(f"CAM needs a linear layer with {K} inputs after global pooling; "
                             "none found (pass fc_layer=...)")
        return linears[-1]

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        if ctx.targets.indices is None:
            raise ValueError("CAM needs class-index targets, not callables")
        A, logits = ctx.activations[0], ctx.logits
        fc = self.fc_layer or self._find_fc(A.shape[1])
        if fc.in_features != A.shape[1]:
            raise ValueError(f"fc_layer has {fc.in_features} inputs but the target layer "
                             f"has {A.shape[1]} channels")
        if logits is not None and fc.out_features != logits.shape[1]:
            raise ValueError(f"fc_layer has {fc.out_features} outputs but the model "
                             f"returns {logits.shape[1]} classes")
        return [fc.weight.detach()[ctx.targets.indices].to(A.dtype)]
