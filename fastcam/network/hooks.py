"""Capturing target-layer activations during a forward pass, removably."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn

#: maps a layer's raw output to a (B, K, h, w) activation, e.g. ViT tokens
#: (B, 1 + h·w, D) -> (B, D, h, w); pytorch-grad-cam's ``reshape_transform``
Transform = Callable[[Tensor], Tensor]


class _RouteGrad(torch.autograd.Function):
    """Identity on a layer's output that routes the output's gradient, through
    ``transform``, into the transformed activation ``A`` as well.

    ``A = transform(output)`` is not used by the rest of the model, so autograd
    alone gives it no gradient; with this node ``∂s/∂A = transform(∂s/∂output)``
    — pytorch-grad-cam's convention, which applies ``reshape_transform`` to the
    recorded gradient (exact for the usual reshape/slice/transpose transforms).
    """

    @staticmethod
    def forward(ctx, output: Tensor, A: Tensor, transform: Transform) -> Tensor:
        ctx.transform = transform
        return output.clone()   # the model goes on with a copy (see the hook)

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad_A = ctx.transform(grad) if ctx.needs_input_grad[1] else None
        return (grad if ctx.needs_input_grad[0] else None), grad_A, None


class ActivationCapture:
    """Forward hooks that record each target layer's output.

    With ``track_grad=True`` an output that does not require grad (frozen
    parameters, an input without grad) is replaced by a leaf that does, so the
    target score can always be differentiated w.r.t. the activation; the
    backward pass then stops at the target layer. A layer that runs several
    times in one forward (a shared module) keeps its last output. Use as a context manager:
    hooks are removed on exit, also on error.

    ``transform`` (optional) turns a layer's raw output into the (B,K,h,w)
    activation that is recorded (a ViT's token sequence into a grid); with
    ``track_grad`` the recorded tensor receives ``transform(∂s/∂output)`` as its
    gradient (see :class:`_RouteGrad`) and the model itself is unchanged.
    """

    def __init__(self, layers: Sequence[nn.Module], track_grad: bool,
                 transform: Optional[Transform] = None, keep_raw: bool = False):
        self.layers = list(layers)
        self.track_grad = track_grad
        self.transform = transform
        self.keep_raw = keep_raw
        self.activations: list[Tensor | None] = [None] * len(self.layers)
        #: with a transform and ``keep_raw``: each layer's raw output (detached), before it
        self.raw_outputs: list[Tensor | None] = [None] * len(self.layers)
        self._handles = []

    def _hook(self, index: int):
        def hook(module, _inputs, output):
            if not isinstance(output, Tensor):
                raise ValueError(f"target layer {type(module).__name__} returned "
                                 f"{type(output).__name__}, not a tensor")
            if self.transform is not None:
                return self._record_transformed(index, module, output)
            _check_spatial(module, output, "")
            if self.track_grad and not output.requires_grad:
                output = output.detach().requires_grad_(True)
            self.activations[index] = output
            # The model goes on with a copy: a later in-place op (VGG's
            # ReLU(inplace=True) after a conv target) must not change the
            # captured values or where their gradient is taken.
            return output.clone()
        return hook

    def _record_transformed(self, index: int, module: nn.Module, output: Tensor) -> Tensor:
        if self.keep_raw:
            self.raw_outputs[index] = output.detach().clone()
        A = self.transform(output.detach())
        if not isinstance(A, Tensor):
            raise ValueError(f"reshape_transform returned {type(A).__name__}, not a tensor")
        _check_spatial(module, A, " after reshape_transform")
        A = A.clone()   # own storage: later in-place ops on the output cannot reach it
        if not self.track_grad:
            self.activations[index] = A
            return output.clone()
        A.requires_grad_(True)
        self.activations[index] = A
        return _RouteGrad.apply(output, A, self.transform)

    def __enter__(self) -> "ActivationCapture":
        self.activations = [None] * len(self.layers)
        self.raw_outputs = [None] * len(self.layers)
        self._handles = [layer.register_forward_hook(self._hook(i))
                         for i, layer in enumerate(self.layers)]
        return self

    def __exit__(self, *exc) -> bool:
        for h in self._handles:
            h.remove()
        self._handles = []
        return False

    def collected(self) -> list[Tensor]:
        missing = [i for i, a in enumerate(self.activations) if a is None]
        if missing:
            raise RuntimeError(f"target layer(s) {missing} did not run during the forward pass")
        return list(self.activations)


def _check_spatial(module: nn.Module, t: Tensor, where: str) -> None:
    if t.dim() != 4:
        raise ValueError(f"target layer {type(module).__name__} has no spatial output{where}: "
                         f"its output has shape {tuple(t.shape)}, expected (B,K,h,w)"
                         + ("" if where else "; pass a reshape_transform for token outputs"))
