"""The execution engine: the passes of a network that the methods and metrics make.

DESIGN.md's data flow is methods → ops → kernels, with the network run in one
place. Three kinds of pass exist, one function each:

- :meth:`Engine.capture`: one forward of the batch with the target layers
  hooked, with autograd to the target layers (gradient methods) or without;
- :meth:`Engine.forward`: a plain forward, optionally differentiable w.r.t.
  its input only (Opti-CAM's loop; :meth:`Engine.frozen` keeps the parameters
  out of autograd);
- :meth:`Engine.stream_scores`: chunks of perturbed inputs, built on the fly,
  scored under inference mode (Score-CAM, the faithfulness metrics, Shap-CAM's
  coalitions through a tail).

The network is the user's model or a part of it (a :func:`fastcam.network.split`
tail); it runs in its own dtype and memory format (fp32 NCHW for an fp32 model).
Not yet here: the target-layer search's dry run (:func:`fastcam.network.layers.find_spatial_layer`),
the split's first-call check and hook-mode tail, and DeepLIFT's tail pass.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .network.hooks import ActivationCapture, Transform

#: ``score_fn(outputs, image_index)``: one score per row of a chunk's outputs
ScoreFn = Callable[[Tensor, Tensor], Tensor]


class Engine:
    """Runs ``network`` (an ``nn.Module``) for the methods and metrics; see the module docstring."""

    def __init__(self, network: nn.Module):
        if not isinstance(network, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(network).__name__}")
        self.network = network

    def capture(self, x: Tensor, layers: Sequence[nn.Module], *, grad: bool,
                transform: Optional[Transform] = None) -> tuple[list[Tensor], Tensor]:
        """(activations per layer (B,K,h,w), output) of one forward of ``x``.

        ``grad=True``: autograd from the output back to the activations (the
        backward stops there); else no autograd at all (``torch.no_grad``, so the
        tensors may still enter autograd later, unlike inference-mode tensors).
        ``transform``: a layer's raw output → (B,K,h,w) (see
        :class:`~fastcam.network.hooks.ActivationCapture`)."""
        mode = torch.enable_grad() if grad else torch.no_grad()
        with mode, ActivationCapture(layers, track_grad=grad, transform=transform) as hooks:
            out = self.network(x)
            if not isinstance(out, Tensor):
                raise ValueError(f"the model returned {type(out).__name__}; fastcam needs "
                                 "a tensor of logits (B, C)")
        return hooks.collected(), out

    def forward(self, x: Tensor, *, grad: bool = False) -> Tensor:
        """The output on ``x``; with ``grad`` differentiable (w.r.t. the input,
        and the parameters unless inside :meth:`frozen`)."""
        with torch.enable_grad() if grad else torch.no_grad():
            return self.network(x)

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Parameters excluded from autograd for the duration (restored on exit,
        also on error): a backward to the input then computes no parameter gradient."""
        params = [p for p in self.network.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    @contextlib.contextmanager
    def preserved_buffers(self) -> Iterator[None]:
        """The network's buffers (batch-norm running statistics) restored on exit,
        also on error: passes of a network in training mode leave no trace in it."""
        if not any(m.training for m in self.network.modules()):
            yield          # in eval mode no built-in layer writes its buffers
            return
        saved = [(b, b.detach().clone()) for b in self.network.buffers()]
        try:
            yield
        finally:
            with torch.no_grad():
                for b, value in saved:
                    b.copy_(value)

    def stream_scores(self, n: int, build: Callable[[int, int], Tensor], image: Tensor,
                      score_fn: ScoreFn, chunk_size: int) -> Tensor:
        """Scores (n,) of the network on the copies ``build(start, stop)`` (one
        chunk of inputs at a time, ``chunk_size`` copies), under inference mode;
        ``image[j]`` is the image copy j belongs to, passed to ``score_fn``."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        out: Optional[Tensor] = None
        with torch.inference_mode():
            for start in range(0, n, chunk_size):
                stop = min(n, start + chunk_size)
                s = score_fn(self.network(build(start, stop)), image[start:stop])
                if out is None:
                    out = torch.empty(n, dtype=s.dtype, device=s.device)
                out[start:stop] = s
        return out if out is not None else torch.empty(0, device=image.device)


def engine_for(model: Union[nn.Module, Engine]) -> Engine:
    """``model``'s engine: the Engine itself, or a new one around an ``nn.Module``."""
    return model if isinstance(model, Engine) else Engine(model)
