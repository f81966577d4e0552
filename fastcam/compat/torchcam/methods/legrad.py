"""TorchCAM's LeGrad (``torchcam.methods.LeGrad``) on :mod:`fastcam.methods.legrad`.

The attention recording and the relevance are the native module's
(:class:`fastcam.methods.legrad.AttentionRecorder`, ``legrad_relevance``).
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ....methods import legrad as _legrad
from ...numerics import normalize
from ....network.layers import resolve_layers
from .core import HookScope, MissingForwardError

__all__ = ["LeGrad"]


class LeGrad(HookScope):
    """LeGrad (Bousselham et al. 2024) with TorchCAM 0.5's interface: per target block
    l, ``R_l = mean over heads and queries of ReLU(∂s_l/∂P_l)`` with ``P_l`` its
    post-softmax attention and ``s_l`` the class score of its tokens through
    ``score_projection``; prefix keys dropped, the patch maps averaged over blocks,
    one map (N, h, w) scaled ``(M−min)/(max−min+1e-8)`` when ``normalized``.

    Use as TorchCAM's: ``cam = LeGrad(model, blocks); scores = model(x); maps = cam(c, scores)``
    (the forward must run with autograd). The user's graph stays whole: each block's
    backward retains it up to the last (and after the last with ``retain_graph=True``).
    """

    def __init__(self, model: nn.Module, target_layer: Union[nn.Module, str, Sequence[Union[nn.Module, str]]],
                 *, score_projection: Optional[Callable[[Tensor], Tensor]] = None, prefix_tokens: int = 1,
                 grid_shape: Optional[tuple[int, int]] = None, enable_hooks: bool = True) -> None:
        if target_layer is None or (isinstance(target_layer, (list, tuple)) and not target_layer):
            raise ValueError("LeGrad requires at least one explicit target block")
        _legrad.check_options(prefix_tokens, grid_shape, score_projection)
        self.model = model
        self.prefix_tokens = prefix_tokens
        self.grid_shape = grid_shape
        blocks = resolve_layers(model, target_layer)
        names = {id(m): n for n, m in model.named_modules()}
        self.target_names = [names[id(b)] for b in blocks]
        projection = score_projection or _legrad.vit_score_projection(model)
        self._rec = _legrad.AttentionRecorder(model, blocks, projection, cut=False)
        self._open = False
        if enable_hooks:
            self.enable_hooks()

    def enable_hooks(self) -> None:
        if not self._open:
            self._rec.open()
            self._open = True

    def disable_hooks(self) -> None:
        self.remove_hooks()

    def remove_hooks(self) -> None:
        if self._open:
            self._rec.close()
            self._open = False

    def reset_hooks(self) -> None:
        """Forget what was recorded (the hooks stay)."""
        self._rec.clear()

    def __call__(self, class_idx: Union[int, Sequence[int]], scores: Any = None, normalized: bool = True,
                 retain_graph: bool = False, *, targets: Any = None, **_: Any) -> list[Tensor]:
        if targets is not None:
            raise ValueError("LeGrad does not support arbitrary output targets")
        try:
            P, logits = self._rec.collected()
        except RuntimeError as exc:
            raise MissingForwardError("Inputs need to be forwarded through every LeGrad target block") from exc
        B, C = logits[0].shape
        if isinstance(class_idx, numbers.Integral) and not isinstance(class_idx, bool):
            idx = [int(class_idx)] * B
        elif isinstance(class_idx, (list, tuple)) and len(class_idx) == B and all(
                isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in class_idx):
            idx = [int(c) for c in class_idx]
        else:
            raise ValueError(f"Incorrect `class_idx` argument value: {class_idx!r} (an int or one per sample)")
        if any(c < 0 or c >= C for c in idx):
            raise ValueError(f"Incorrect `class_idx` argument value: {class_idx!r} is outside [0, {C})")
        selected = [l.gather(1, torch.tensor(idx, device=l.device)[:, None])[:, 0] for l in logits]
        grids = _legrad.legrad_relevance(selected, P, self.prefix_tokens, self.grid_shape, joint=False,
                                         retain_graph=retain_graph)
        with torch.no_grad():
            cam = torch.stack(grids).mean(0)
            return [normalize(cam) if normalized else cam]

    def __repr__(self) -> str:
        return f"LeGrad(target_layer={self.target_names}, prefix_tokens={self.prefix_tokens})"
