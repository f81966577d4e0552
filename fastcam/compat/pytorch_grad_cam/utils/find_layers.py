"""Finding and replacing submodules (``pytorch_grad_cam.utils.find_layers``).

All four walk the module tree the way grad-cam's do: depth first, in
registration order, parent before children (pre-order), the root itself
excluded, a module reachable along two paths visited along each (no
de-duplication, unlike ``nn.Module.modules()``). Unlike grad-cam's, empty slots
(a submodule registered as ``None``) are skipped instead of raising
``AttributeError``, and the subtree of a module just replaced is not walked.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, Union

from torch import nn

__all__ = ["replace_layer_recursive", "replace_all_layer_type_recursive",
           "find_layer_types_recursive", "find_layer_predicate_recursive"]

LayerTypes = Union[type, tuple[type, ...]]


def _walk(model: nn.Module) -> Iterator[tuple[nn.Module, str, nn.Module]]:
    """(parent, name, child) for every descendant of ``model``, in pre-order.

    A child's own children are read after the caller has seen it; if the caller
    replaced it in its parent meanwhile, its subtree is skipped.
    """
    stack = [(model, name, child) for name, child in reversed(model._modules.items())]
    while stack:
        parent, name, child = stack.pop()
        if child is None:
            continue
        yield parent, name, child
        if parent._modules.get(name) is child:
            stack.extend((child, n, c) for n, c in reversed(child._modules.items()))


def replace_layer_recursive(model: nn.Module, old_layer: nn.Module, new_layer: nn.Module) -> bool:
    """Put ``new_layer`` where ``old_layer`` (the same object) first occurs under
    ``model``; True if it was found, False (nothing changed) otherwise."""
    for parent, name, child in _walk(model):
        if child is old_layer:
            parent.add_module(name, new_layer)
            return True
    return False


def replace_all_layer_type_recursive(model: nn.Module, old_layer_type: LayerTypes,
                                     new_layer: nn.Module) -> None:
    """Put ``new_layer`` in place of every submodule that is an instance of
    ``old_layer_type`` (a type or tuple of types, ``isinstance`` semantics). The
    same ``new_layer`` object fills every place, as in grad-cam."""
    for parent, name, child in _walk(model):
        if isinstance(child, old_layer_type):
            parent.add_module(name, new_layer)


def find_layer_types_recursive(model: nn.Module,
                               layer_types: Union[type, Iterable[type]]) -> list[nn.Module]:
    """The submodules whose exact type (``type(m) in layer_types``, subclasses
    not included, as in grad-cam) is one of ``layer_types``, in pre-order.
    A single type is accepted too."""
    layer_types = (layer_types,) if isinstance(layer_types, type) else tuple(layer_types)
    return find_layer_predicate_recursive(model, lambda layer: type(layer) in layer_types)


def find_layer_predicate_recursive(model: nn.Module,
                                   predicate: Callable[[nn.Module], bool]) -> list[nn.Module]:
    """The submodules for which ``predicate`` is true, in pre-order."""
    return [child for _, _, child in _walk(model) if predicate(child)]
