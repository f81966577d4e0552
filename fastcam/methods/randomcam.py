"""Random-CAM: a sanity baseline with random channel weights (pytorch-grad-cam's RandomCAM)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from ..network.layers import LayerSpec
from .base import BaseCAM, CallContext, CommonOptions, Unpack


class RandomCAM(BaseCAM):
    """Channel weights drawn uniformly from [-1, 1), independently per image and
    channel; map ``minmax(up(ReLU(Σ_k w_k A_k)))``. A method that ignores the model's
    decision: what any explanation should beat.

    ``seed``: None draws from torch's global generator (reproducible under
    ``torch.manual_seed``); an int seeds a generator of this explainer once, so a
    sequence of calls repeats exactly. Weights are drawn on the CPU and moved to
    the activation's device, so a seed gives the same maps on every device.
    No gradients are computed (capture "forward").
    """

    capture = "forward"

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *, seed: Optional[int] = None,
                 **options: Unpack[CommonOptions]):
        super().__init__(model, target_layers, **options)
        if seed is not None and not isinstance(seed, int):
            raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        return [(torch.rand(A.shape[:2], generator=self.generator) * 2 - 1).to(A.device)
                for A in ctx.activations]
