"""Capturing target-layer activations during a forward pass, removably."""
from __future__ import annotations

from typing import Sequence

from torch import Tensor, nn


class ActivationCapture:
    """Forward hooks that record each target layer's output.

    With ``track_grad=True`` an output that does not require grad (frozen
    parameters, an input without grad) is replaced by a leaf that does, so the
    target score can always be differentiated w.r.t. the activation; the
    backward pass then stops at the target layer. A layer that runs several
    times in one forward (a shared module) keeps its last output. Use as a context manager:
    hooks are removed on exit, also on error.
    """

    def __init__(self, layers: Sequence[nn.Module], track_grad: bool):
        self.layers = list(layers)
        self.track_grad = track_grad
        self.activations: list[Tensor | None] = [None] * len(self.layers)
        self._handles = []

    def _hook(self, index: int):
        def hook(module, _inputs, output):
            if not isinstance(output, Tensor):
                raise ValueError(f"target layer {type(module).__name__} returned "
                                 f"{type(output).__name__}, not a tensor")
            if output.dim() != 4:
                raise ValueError(f"target layer {type(module).__name__} has no spatial output: "
                                 f"its output has shape {tuple(output.shape)}, expected (B,K,h,w)")
            if self.track_grad and not output.requires_grad:
                output = output.detach().requires_grad_(True)
            self.activations[index] = output
            # The model goes on with a copy: a later in-place op (VGG's
            # ReLU(inplace=True) after a conv target) must not change the
            # captured values or where their gradient is taken.
            return output.clone()
        return hook

    def __enter__(self) -> "ActivationCapture":
        self.activations = [None] * len(self.layers)
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
