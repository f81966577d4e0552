"""Guided backpropagation (Springenberg, Dosovitskiy, Brox, Riedmiller, "Striving for
Simplicity: The All Convolutional Net", ICLR-W 2015, section 3.4).

Guided backpropagation is the gradient of a class score w.r.t. the input in which every
ReLU passes back only positive gradients at positions where its input was positive:
``R_in = R_out · 1[x > 0] · 1[R_out > 0]`` (the paper's Fig. 1).

The model is never modified: during a call each ``nn.ReLU`` gets a forward hook that
follows its output by :class:`PositiveGradient` (identity forward, gradient clamped at 0
backward). The ReLU's own backward supplies ``1[x > 0]``, so the product is exactly the
guided rule, for in-place ReLUs too. The hooks are removed on return and on error, the
parameters are kept out of autograd (no ``.grad`` written) and only the input's gradient
is computed. Only ``nn.ReLU`` modules are guided (a functional ``F.relu`` is not).
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager, Iterator, Protocol, Union

import torch
from torch import Tensor, nn

from ..inputs import Normalize, check_images, normalizer
from ..targets import TargetSpec, resolve_targets

#: which class each image's gradient is of: a :data:`fastcam.targets.TargetSpec`, or a
#: function of the outputs (B, C) returning the classes (B,)
GuidedTargets = Union[TargetSpec, Callable[[Tensor], Tensor]]


class Runner(Protocol):
    """What :func:`guided_backprop` needs of :class:`fastcam.engine.Engine`."""

    network: nn.Module

    def frozen(self) -> ContextManager[None]: ...

    def forward(self, x: Tensor, *, grad: bool = False) -> Tensor: ...


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


def guided_backprop(engine: Runner, x: Tensor, targets: GuidedTargets = None, *,
                    normalize: Normalize = None) -> Tensor:
    """Guided gradients (B, C, H, W), float32, of the target scores ``output[b, c_b]``
    w.r.t. ``x`` (the pixel-space image when ``normalize=(mean, std)``).

    ``engine``: the :class:`fastcam.engine.Engine` of the model (one forward and one
    backward, the parameters frozen). ``targets``: None (each image's highest output),
    an int, B ints, B callables of an output row, or a function of the outputs (B, C)
    returning the classes (B,)."""
    check_images(x)
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point image batch, got {x.dtype}")
    x = x.detach().requires_grad_(True)
    norm = normalizer(normalize, x)
    with torch.inference_mode(False), torch.enable_grad(), engine.frozen(), guided_relus(engine.network):
        out = engine.forward(norm(x), grad=True)
        if out.dim() != 2:
            raise ValueError(f"the model must return logits (B, C), got shape {tuple(out.shape)}")
        if callable(targets) and not isinstance(targets, (list, tuple, Tensor)):
            classes = targets(out.detach())
            score = out.gather(1, classes[:, None].to(out.device, torch.long)).sum()
        else:
            score = resolve_targets(targets, out).scores(out).sum()
        (grad,) = torch.autograd.grad(score, x)
    return grad.float()
