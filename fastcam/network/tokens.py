"""Token outputs as (B, K, h, w) activations: the ``reshape_transform`` functions
for vision transformers, and the target layers the automatic search picks in
them (:func:`fastcam.network.layers.find_target_layer`).

A ViT's block outputs tokens (B, P + h·w, D): P prefix tokens (the class token,
register tokens) and one token per image patch, row by row. A CAM reads the
patch tokens as a D-channel h×w activation — pytorch-grad-cam's
``reshape_transform`` (its ViT tutorial drops the class token and reshapes; its
Swin transform permutes (B, h, w, D) to (B, D, h, w)).
"""
from __future__ import annotations

import math
import sys
from typing import Optional

from torch import Tensor, nn

__all__ = ["TokenGrid", "ChannelsLastGrid", "resolve_grid", "known_token_layer"]


def resolve_grid(patches: int, grid_shape: Optional[tuple[int, int]]) -> tuple[int, int]:
    """The patch grid (h, w) of ``patches`` tokens: ``grid_shape`` checked against
    the count, or the square root of a perfect square."""
    if patches <= 0:
        raise ValueError("prefix_tokens leaves no patch token: the blocks' tokens are all prefix")
    if grid_shape is not None:
        if grid_shape[0] * grid_shape[1] != patches:
            raise ValueError(f"grid_shape {grid_shape} does not hold the {patches} patch tokens")
        return tuple(grid_shape)
    side = math.isqrt(patches)
    if side * side != patches:
        raise ValueError(f"{patches} patch tokens make no square grid; pass grid_shape=(h, w)")
    return side, side


class TokenGrid:
    """Tokens (B, P + h·w, D) -> (B, D, h, w): the ``prefix_tokens`` P leading
    tokens dropped, the patch tokens laid out row by row on ``grid_shape`` (h, w)
    (None: a square grid)."""

    def __init__(self, prefix_tokens: int = 1, grid_shape: Optional[tuple[int, int]] = None):
        if isinstance(prefix_tokens, bool) or not isinstance(prefix_tokens, int) or prefix_tokens < 0:
            raise ValueError(f"prefix_tokens must be an int >= 0, got {prefix_tokens!r}")
        self.prefix_tokens = prefix_tokens
        self.grid_shape = None if grid_shape is None else tuple(int(v) for v in grid_shape)

    def __call__(self, tokens: Tensor) -> Tensor:
        if tokens.dim() != 3:
            raise ValueError(f"TokenGrid expects tokens (B, N, D), got shape {tuple(tokens.shape)}")
        B, N, D = tokens.shape
        h, w = resolve_grid(N - self.prefix_tokens, self.grid_shape)
        return tokens[:, self.prefix_tokens:].reshape(B, h, w, D).permute(0, 3, 1, 2)

    def __repr__(self) -> str:
        return f"TokenGrid(prefix_tokens={self.prefix_tokens}, grid_shape={self.grid_shape})"


class ChannelsLastGrid:
    """A channels-last map (B, h, w, D) -> (B, D, h, w) (a Swin block's output);
    tokens (B, h·w, D) on a square grid are accepted too (older timm Swins)."""

    def __call__(self, t: Tensor) -> Tensor:
        if t.dim() == 4:
            return t.permute(0, 3, 1, 2)
        if t.dim() == 3:
            return TokenGrid(prefix_tokens=0)(t)
        raise ValueError(f"ChannelsLastGrid expects (B, h, w, D), got shape {tuple(t.shape)}")

    def __repr__(self) -> str:
        return "ChannelsLastGrid()"


def _is(model: nn.Module, module: str, name: str) -> bool:
    """``model`` is an instance of ``module.name``, checked only when that module is
    already imported (a model of it cannot exist otherwise): no import here."""
    cls = getattr(sys.modules.get(module), name, None)
    return cls is not None and isinstance(model, cls)


def _grid(x: Tensor, patch_size) -> tuple[int, int]:
    ph, pw = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
    return x.shape[-2] // ph, x.shape[-1] // pw


def _last_swin_block(stages) -> nn.Module:
    blocks = [b for stage in stages for b in (stage if isinstance(stage, nn.Sequential) else [])
              if hasattr(b, "norm1")]
    if not blocks:
        raise ValueError("found no Swin block with a norm1 in the model")
    return blocks[-1]


def known_token_layer(model: nn.Module, x: Tensor):
    """(layer, reshape_transform) for a vision transformer fastcam knows, else None:

    * torchvision ``VisionTransformer``: ``encoder.layers[-1].ln_1`` (the last
      encoder block's first norm), :class:`TokenGrid` with the class token dropped;
    * torchvision ``SwinTransformer``: the last stage's last block's ``norm1``,
      :class:`ChannelsLastGrid`;
    * timm ``VisionTransformer`` (``blocks[-1].norm1``, its ``num_prefix_tokens``
      dropped) and ``SwinTransformer`` (``layers[-1].blocks[-1].norm1``) — the
      layers pytorch-grad-cam's ViT/Swin tutorials use.
    """
    if _is(model, "torchvision.models.vision_transformer", "VisionTransformer"):
        return model.encoder.layers[-1].ln_1, TokenGrid(1, _grid(x, model.patch_size))
    if _is(model, "torchvision.models.swin_transformer", "SwinTransformer"):
        return _last_swin_block(model.features).norm1, ChannelsLastGrid()
    if _is(model, "timm.models.vision_transformer", "VisionTransformer"):
        prefix = int(getattr(model, "num_prefix_tokens", 1))
        return model.blocks[-1].norm1, TokenGrid(prefix, _grid(x, model.patch_embed.patch_size))
    if _is(model, "timm.models.swin_transformer", "SwinTransformer"):
        return model.layers[-1].blocks[-1].norm1, ChannelsLastGrid()
    return None
