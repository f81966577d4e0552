"""``pytorch_grad_cam.guided_backprop``: guided backpropagation (Springenberg et al., "Striving
for Simplicity: The All Convolutional Net", ICLR-W 2015, section 3.4).

Guided backpropagation is the gradient of a class score w.r.t. the input in which every
ReLU passes back only positive gradients at positions where its input was positive:
``R_in = R_out · 1[x > 0] · 1[R_out > 0]`` (the paper's eq. in fig. 1).

pytorch-grad-cam swaps the model's ``nn.ReLU`` modules for guided ones and back (the model
ends up with new non-in-place ``ReLU()`` objects, and the backward writes the parameters'
``.grad``). Here the model is never modified: during a call each ``nn.ReLU`` gets a forward
hook that follows its output by :class:`PositiveGradient` (identity forward, gradient
clamped at 0 backward). The ReLU's own backward supplies ``1[x > 0]``, so the product is
exactly the guided rule, for in-place ReLUs too. The hooks are removed on return and on
error, and only the input's gradient is computed.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Union

import numpy as np
import torch
from torch import Tensor, nn

from ...engine import Engine

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


class PositiveGradient(torch.autograd.Function):
    """Identity forward (a copy, so that later in-place ops of the model stay legal),
    gradient clamped at 0 backward: after a ReLU it turns the ReLU's backward into the guided one."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.clamp(min=0)


def _guide(module: nn.Module, inputs, output):
    return PositiveGradient.apply(output) if isinstance(output, Tensor) else output


@contextlib.contextmanager
def guided_relus(model: nn.Module) -> Iterator[int]:
    """Every ``nn.ReLU`` of ``model`` backpropagates guidedly for the duration (forward
    hooks, removed on exit, also on error); yields how many ReLUs were hooked."""
    handles = [m.register_forward_hook(_guide) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        yield len(handles)
    finally:
        for h in handles:
            h.remove()


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
        x = input_img.detach().to(self.device).requires_grad_(True)
        with torch.inference_mode(False), torch.enable_grad(), self.engine.frozen(), guided_relus(self.model):
            out = self.engine.forward(x, grad=True)
            if out.dim() != 2:
                raise ValueError(f"the model must return logits (B, C), got shape {tuple(out.shape)}")
            classes = self._classes(out, target_category)
            score = out.gather(1, classes[:, None]).sum()
            (grad,) = torch.autograd.grad(score, x)
        return grad.float()

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
