"""Fake-CAM (Poppi, Cornia, Baraldi, Cucchiara, CVPR-W 2021; the row Opti-CAM's
Table 1 uses to show that Average Drop alone misleads)."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import BaseCAM, CallContext


class FakeCAM(BaseCAM):
    """A map that is 1 at every pixel except 0 at the top-left one, whatever the
    model, the image or the class — Poppi et al.'s definition, as used in
    Opti-CAM's Table 1 (Zhang et al. 2024). Masking with it keeps all but one
    pixel of the image, so its Average Drop is near 0 (0.8 on ResNet-50 in
    Opti-CAM's Table 1) while it explains nothing; its Average Gain is near 0
    too, which is why Opti-CAM reports AG beside AD. The map is the same for
    every target layer; the capture pass only records the logits and scores.

    The record: ``low_res`` is the map itself, ``weights`` is empty.
    """

    capture = "forward"

    def maps(self, ctx: CallContext) -> Tensor:
        B, (H, W) = ctx.x.shape[0], ctx.size
        maps = torch.ones(B, H, W, dtype=torch.float32, device=ctx.x.device)
        maps[:, 0, 0] = 0
        ctx.weights, ctx.low_res = [], [maps]
        return maps
