"""``pytorch_grad_cam.ablation_layer``: the layers Ablation-CAM swaps in to ablate channels.

``AblationLayer`` (CNN channels) is fastcam's: an ``nn.Module`` with grad-cam's
public methods and behaviour, on top of :mod:`fastcam.perturbation.channel_ablation`
(fastcam's :class:`~fastcam.compat.pytorch_grad_cam.ablation_cam.AblationCAM`
does not swap a layer into the model: it runs the ablated activations through
the model's tail). ``AblationLayerVit`` (token channels, last axis) is fastcam's
too; with it the AblationCAM front-end takes a ``reshape_transform`` and re-runs
the model with the layer's tokens substituted. Not implemented by fastcam yet:
``AblationLayerFasterRCNN`` is pytorch-grad-cam's own, handed out with a warning
(``._delegate``); without grad-cam, accessing it raises ImportError.
"""
from __future__ import annotations

from typing import Union

import numpy as np
import torch
from torch import Tensor, nn

from ...perturbation.channel_ablation import channels_to_ablate, objectiveness_mask
from ..numerics import PGC_OFFSET
from ._delegate import delegated

__all__ = ["AblationLayer", "AblationLayerVit", "AblationLayerFasterRCNN"]
__getattr__ = delegated(__name__, ["AblationLayerFasterRCNN"])

Array = Union[np.ndarray, Tensor]


def _tensor(a: Array) -> Tensor:
    return torch.as_tensor(np.asarray(a) if not isinstance(a, Tensor) else a)


class AblationLayer(nn.Module):
    """pytorch-grad-cam's ``AblationLayer``: stands in for the target layer and
    returns ``self.activations`` (set by :meth:`set_next_batch`: one image's
    activation repeated) with channel ``self.indices[i]`` of copy i ablated —
    to 0 when the batch's minimum is 0, else to the running minimum − 1e7 (so
    copy i gets ``min − (i+1)·1e7``), in place, as there."""

    def __init__(self) -> None:
        super().__init__()
        self.indices = np.zeros(0, dtype=np.int32)
        self.activations: Tensor | None = None

    def objectiveness_mask_from_svd(self, activations: Array, threshold: float = 0.01) -> np.ndarray:
        """(K, h, w) -> (h, w) bool: ``|p| > threshold`` for the min-max scaled
        first principal component projection p of the activation."""
        A = _tensor(activations)
        return objectiveness_mask(A[None], threshold)[0].cpu().numpy()

    def activations_to_be_ablated(self, activations: Array,
                                  ratio_channels_to_ablate: float = 1.0) -> np.ndarray:
        """The channels to ablate for one image's (K, h, w) activation, in
        grad-cam's order (see :func:`fastcam.perturbation.channel_ablation.channels_to_ablate`);
        also kept as ``self.indices``."""
        A = _tensor(activations)
        self.indices = channels_to_ablate(A[None], ratio_channels_to_ablate)[0].cpu().numpy().astype(np.int32)
        return self.indices

    def set_next_batch(self, input_batch_index: int, activations: Tensor,
                       num_channels_to_ablate: int) -> None:
        """``self.activations`` = image ``input_batch_index``'s activation repeated
        ``num_channels_to_ablate`` times."""
        self.activations = activations[input_batch_index].clone().unsqueeze(0).repeat(
            num_channels_to_ablate, *([1] * (activations.dim() - 1)))

    def __call__(self, x: Tensor) -> Tensor:     # as grad-cam's: the input is ignored
        return self.forward(x)

    def forward(self, x: Tensor) -> Tensor:
        output = self.activations
        if output is None:
            raise RuntimeError("AblationLayer: call set_next_batch first")
        for i in range(output.size(0)):
            low = torch.min(output)
            output[i, int(self.indices[i]), :] = 0 if low == 0 else low - PGC_OFFSET
        return output


class AblationLayerVit(AblationLayer):
    """pytorch-grad-cam's ``AblationLayerVit``: as :class:`AblationLayer` for a
    token output with the channel on the last axis ((n, N, D), class token
    included): :meth:`set_next_batch` repeats one image's tokens and copy i gets
    ``tokens[i, ..., indices[i]]`` of every token set to 0 when the batch's
    minimum is 0, else to the running minimum − 1e7, in place, as there."""

    def set_next_batch(self, input_batch_index: int, activations: Tensor,
                       num_channels_to_ablate: int) -> None:
        """``self.activations`` = image ``input_batch_index``'s tokens repeated
        ``num_channels_to_ablate`` times."""
        self.activations = activations[input_batch_index].clone().unsqueeze(0).repeat(
            num_channels_to_ablate, *([1] * (activations.dim() - 1)))

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.activations
        if tokens is None:
            raise RuntimeError("AblationLayerVit: call set_next_batch first")
        for i in range(tokens.size(0)):
            low = torch.min(tokens)
            tokens[i, ..., int(self.indices[i])] = 0 if low == 0 else low - PGC_OFFSET
        return tokens
