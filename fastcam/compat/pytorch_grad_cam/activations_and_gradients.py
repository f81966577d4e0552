"""``pytorch_grad_cam.activations_and_gradients``: the hooks recording target layers'
activations and gradients (grad-cam's ``ActivationsAndGradients``), for scripts that build
their own CAMs on it. fastcam's methods do not use it (they hook layers only during a call,
:class:`fastcam.network.hooks.ActivationCapture`)."""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

from torch import Tensor, nn

__all__ = ["ActivationsAndGradients"]


class ActivationsAndGradients:
    """Forward hooks on ``target_layers`` that record each layer's output
    (``activations``, in forward order) and, when the output requires grad, its gradient
    on the next backward (``gradients``, in the same layer order: a backward meets the
    layers in reverse, so each gradient is prepended), as grad-cam.

    ``detach=True`` (default): the records are detached CPU tensors, ``reshape_transform``
    applied to both; ``detach=False``: the live tensors, no transform (grad-cam's rules).
    ``obj(x)`` clears the records and returns ``model(x)``; ``clear()`` empties them;
    ``release()`` also removes the hooks — the model is then as before (the hooks stay
    until then, as in grad-cam; use it in a ``with`` block to have them removed on exit).

    Unlike grad-cam, a detached activation is a copy: a later in-place op of the model
    (VGG's ``ReLU(inplace=True)`` after a conv target) cannot change the record.
    """

    def __init__(self, model: nn.Module, target_layers: Sequence[nn.Module],
                 reshape_transform: Optional[Callable[[Tensor], Tensor]], detach: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        layers = list(target_layers) if isinstance(target_layers, (list, tuple)) else None
        if not layers or not all(isinstance(m, nn.Module) for m in layers):
            raise TypeError("target_layers must be a non-empty list of modules, e.g. [model.layer4[-1]]")
        self.model = model
        self.gradients: List[Tensor] = []
        self.activations: List[Tensor] = []
        self.reshape_transform = reshape_transform
        self.detach = detach
        self.handles = []
        for layer in layers:
            self.handles.append(layer.register_forward_hook(self.save_activation))
            # a tensor hook on the output, not a module backward hook (pytorch issue 61519)
            self.handles.append(layer.register_forward_hook(self.save_gradient))

    def _kept(self, t: Tensor) -> Tensor:
        if self.reshape_transform is not None:
            t = self.reshape_transform(t)
        return t.detach().to("cpu", copy=True)

    def save_activation(self, module: nn.Module, inputs, output: Tensor) -> None:
        self.activations.append(self._kept(output) if self.detach else output)

    def save_gradient(self, module: nn.Module, inputs, output: Tensor) -> None:
        if not isinstance(output, Tensor) or not output.requires_grad:
            return          # only a tensor in autograd takes a hook

        def store(grad: Tensor) -> None:
            self.gradients = [self._kept(grad) if self.detach else grad] + self.gradients

        output.register_hook(store)

    def __call__(self, x: Tensor):
        self.gradients = []
        self.activations = []
        return self.model(x)

    def clear(self) -> None:
        """Empty the records (live tensors are detached in place first, as grad-cam)."""
        for t in (*self.activations, *self.gradients):
            if isinstance(t, Tensor):
                t.detach_()
        self.activations.clear()
        self.gradients.clear()

    def release(self) -> None:
        """Empty the records and remove the hooks."""
        self.clear()
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def __enter__(self) -> "ActivationsAndGradients":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.release()
        return False
