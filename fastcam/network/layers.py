"""Finding the target layer(s) of a model: by module, by dotted name, or the last
module with a spatial 4-D output (a dry run)."""
from __future__ import annotations

import difflib
from typing import Sequence, Union

import torch
from torch import Tensor, nn

LayerSpec = Union[None, str, nn.Module, Sequence[Union[str, nn.Module]]]


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
