"""Finding the target layer(s) of a model: by module, by dotted name, or by a dry
run (the last module with a spatial 4-D output; a vision transformer's block norm)."""
from __future__ import annotations

import difflib
import warnings
from typing import Any, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from .hooks import Transform
from .tokens import known_token_layer

LayerSpec = Union[None, str, nn.Module, Sequence[Union[str, nn.Module]]]


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


#: the default of a deprecated keyword: distinguishes "not given" from None
UNSET: Any = _Unset()


def merge_layer_alias(target_layers: LayerSpec, target_layer: Any, where: str) -> LayerSpec:
    """``target_layers``, or the deprecated alias ``target_layer`` when that was
    given instead (with a ``FutureWarning``); both given is a ``TypeError``."""
    if target_layer is UNSET:
        return target_layers
    if target_layers is not None:
        raise TypeError(f"{where}: pass target_layers only (target_layer is its deprecated alias)")
    warnings.warn(f"{where}: target_layer= is deprecated; use target_layers=", FutureWarning,
                  stacklevel=3)
    return target_layer


def resolve_layers(model: nn.Module, layers: LayerSpec) -> list[nn.Module] | None:
    """Modules for ``layers`` (None -> None: found later by :func:`find_spatial_layer`)."""
    if layers is None:
        return None
    if isinstance(layers, (str, nn.Module)):
        layers = [layers]
    layers = list(layers)
    if not layers:
        raise ValueError("target_layers is empty")
    names = dict(model.named_modules())
    modules = []
    for layer in layers:
        if isinstance(layer, nn.Module):
            if not any(m is layer for m in names.values()):
                raise ValueError(f"target layer {type(layer).__name__} is not a submodule of the model")
            modules.append(layer)
        elif isinstance(layer, str):
            if layer not in names or layer == "":
                close = difflib.get_close_matches(layer, [n for n in names if n], n=5)
                hint = f"; did you mean {close}?" if close else ""
                raise ValueError(f"the model has no layer named {layer!r}{hint}")
            modules.append(names[layer])
        else:
            raise TypeError(f"a target layer must be a module or a dotted name, got {type(layer)}")
    return modules


def layer_name(model: nn.Module, layer: nn.Module) -> str:
    for name, m in model.named_modules():
        if m is layer:
            return name
    return type(layer).__name__


def find_spatial_layer(model: nn.Module, x: Tensor, *, include_root: bool = False) -> nn.Module:
    """The last module (in the order forwards finish) whose output has ``x``'s number
    of dims and more than one spatial position (a (B,K,h,w) map for images; TorchCAM's
    front-end searches volumes the same way), found by running ``model`` on ``x[:1]``
    (the documented dry run: the model as given, without the engine). The model
    itself is a candidate only with ``include_root``."""
    last: list[nn.Module] = []

    def hook(module, _inputs, output):
        if (isinstance(output, Tensor) and output.dim() == x.dim()
                and any(v != 1 for v in output.shape[2:])):
            last.append(module)

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if include_root or m is not model]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    if not last:
        raise ValueError("the model has no layer with a spatial (B,K,h,w) output with h*w > 1; "
                         "pass target_layers explicitly")
    return last[-1]


def _is_patch_embedding(module: nn.Module) -> bool:
    """A convolution that cuts the image into patches: kernel = stride > 1."""
    return (isinstance(module, nn.Conv2d) and tuple(module.kernel_size) == tuple(module.stride)
            and any(s > 1 for s in module.stride))


def find_target_layer(model: nn.Module, x: Tensor) -> tuple[nn.Module, Optional[Transform]]:
    """The layer an explainer uses when no ``target_layers`` are given, with the
    ``reshape_transform`` its output needs (None for a CNN).

    A vision transformer fastcam knows (:func:`fastcam.network.tokens.known_token_layer`:
    torchvision's and timm's ViT and Swin) gets its last block's first norm;
    any other model the last module with a spatial (B, K, h, w) output
    (:func:`find_spatial_layer`, a dry run of ``model`` on ``x[:1]``). That module
    is never a patch embedding: when it is (a kernel = stride convolution whose
    output later becomes tokens), a ``ValueError`` says what to pass instead."""
    known = known_token_layer(model, x)
    if known is not None:
        return known
    # one dry run: every module's output rank, in the order forwards finish
    order: list[tuple[nn.Module, int, bool]] = []

    def hook(module, _inputs, output):
        if isinstance(output, Tensor):
            spatial = output.dim() == x.dim() and any(v != 1 for v in output.shape[2:])
            order.append((module, output.dim(), spatial))

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    spatial = [i for i, (_, _, ok) in enumerate(order) if ok]
    if not spatial:
        raise ValueError("the model has no layer with a spatial (B,K,h,w) output with h*w > 1; "
                         "pass target_layers explicitly")
    layer = order[spatial[-1]][0]
    tokens_after = any(dim == 3 for _, dim, _ in order[spatial[-1] + 1:])
    if _is_patch_embedding(layer) and tokens_after:
        raise ValueError(
            f"the last spatial layer of {type(model).__name__} is {layer_name(model, layer)!r}, a "
            "patch embedding: a CAM there explains the input patches, not the model. This looks "
            "like a vision transformer: pass target_layers=[a late block's first norm] and "
            "reshape_transform=fastcam.network.tokens.TokenGrid(prefix_tokens=P) (P = its class "
            "and register tokens)")
    return layer, None
