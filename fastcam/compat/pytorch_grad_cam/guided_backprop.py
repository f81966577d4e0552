"""``pytorch_grad_cam.guided_backprop``: guided backpropagation (Springenberg et al., "Striving
for Simplicity: The All Convolutional Net", ICLR-W 2015, section 3.4) with grad-cam's
interface, an adapter over fastcam's :mod:`fastcam.network.guided_backprop`.

pytorch-grad-cam swaps the model's ``nn.ReLU`` modules for guided ones and back (the model
ends up with new non-in-place ``ReLU()`` objects, and the backward writes the parameters'
``.grad``). fastcam's native function hooks the ReLUs during the call only and leaves the
model as it was. ``GuidedBackpropReLU`` / ``GuidedBackpropReLUasModule`` are grad-cam's
guided ReLU as an autograd function and a module.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from ...engine import Engine
from ...network.guided_backprop import PositiveGradient, guided_backprop, guided_relus  # noqa: F401 (old import path)

__all__ = ["GuidedBackpropReLU", "GuidedBackpropReLUasModule", "GuidedBackpropReLUModel"]


class GuidedBackpropReLU(torch.autograd.Function):
    """The guided ReLU as an autograd function: ``max(x, 0)`` forward,
    ``grad · 1[x > 0] · 1[grad > 0]`` backward (grad-cam's ``GuidedBackpropReLU``)."""

    @staticmethod
    def forward(ctx, input_img: Tensor) -> Tensor:
        ctx.save_for_backward(input_img)
        return input_img.clamp(min=0)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:
        (input_img,) = ctx.saved_tensors
        return grad_output * ((input_img > 0) & (grad_output > 0)).to(grad_output.dtype)


class GuidedBackpropReLUasModule(nn.Module):
    """:class:`GuidedBackpropReLU` as a module (a drop-in for ``nn.ReLU``)."""

    def forward(self, input_img: Tensor) -> Tensor:
        return GuidedBackpropReLU.apply(input_img)


class GuidedBackpropReLUModel:
    """Guided backpropagation with grad-cam's interface:
    ``GuidedBackpropReLUModel(model, device)(input_img, target_category=None)`` -> the guided
    gradient of image 0 as float32 NumPy (H, W, C), like grad-cam.

    ``model.eval()`` is called and, when ``device`` is given, the model is moved there (as
    grad-cam does); otherwise the model is left as it is: no module swapped, no hook left, no
    parameter ``.grad`` written, and the caller's ``input_img`` is not set to require grad.
    ``target_category`` None means the class of image 0's highest output. Only ``nn.ReLU``
    modules are guided (a functional ``F.relu`` in a ``forward`` is not, as in grad-cam).
    :meth:`attributions` gives the whole batch at once (B, C, H, W).
    """

    def __init__(self, model: nn.Module, device: Optional[Union[str, torch.device]] = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        self.model = model
        self.model.eval()
        if device is None:
            param = next(self.model.parameters(), None)
            self.device = param.device if param is not None else torch.device("cpu")
        else:
            self.device = torch.device(device)
            self.model = self.model.to(self.device)
        self.engine = Engine(self.model)

    def forward(self, input_img: Tensor) -> Tensor:
        """The model's output (grad-cam's ``forward``)."""
        return self.model(input_img)

    def attributions(self, input_img: Tensor, target_category=None) -> Tensor:
        """Guided gradients (B, C, H, W) of the target scores ``output[b, c_b]`` w.r.t. the
        input, float32 on the device. ``target_category``: None (each image's highest
        output), an int (every image) or one int per image."""
        if not isinstance(input_img, Tensor) or input_img.dim() != 4 or not input_img.is_floating_point():
            raise ValueError("input_img must be a floating (B, C, H, W) tensor, got "
                             f"{getattr(input_img, 'shape', type(input_img).__name__)}")
        return guided_backprop(self.engine, input_img.detach().to(self.device),
                               lambda out: self._classes(out, target_category))

    def _classes(self, out: Tensor, target_category) -> Tensor:
        b, c = out.shape
        if target_category is None:
            return out.detach().argmax(dim=1)
        t = torch.as_tensor(np.asarray(target_category), device=out.device)
        if t.is_floating_point() or t.dtype == torch.bool or t.dim() > 1:
            raise TypeError(f"target_category must be None, an int or a sequence of ints, got {target_category!r}")
        t = t.long().reshape(-1).expand(b) if t.numel() == 1 else t.long()
        if t.numel() != b:
            raise ValueError(f"got {t.numel()} target categories for a batch of {b} images")
        if bool(((t < 0) | (t >= c)).any()):
            raise ValueError(f"target_category {target_category!r} is outside the model's {c} outputs")
        return t

    def __call__(self, input_img: Tensor, target_category=None) -> np.ndarray:
        """Image 0's guided gradient, float32 NumPy (H, W, C). ``target_category`` None:
        its highest-output class (grad-cam's argmax)."""
        if not isinstance(input_img, Tensor) or input_img.dim() != 4:
            raise ValueError("input_img must be a (B, C, H, W) tensor, got "
                             f"{getattr(input_img, 'shape', type(input_img).__name__)}")
        grad = self.attributions(input_img[:1], target_category)
        return grad[0].permute(1, 2, 0).cpu().numpy()
