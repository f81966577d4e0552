"""Recognising a tail that begins with a linear map of the activation, so the
Shapley methods can update the first linear layer's pre-activation player by
player instead of re-running it for every coalition.

Recognised shapes (the tail's fx graph, from the activation on):
``[MaxPool2d k×k (k ≤ 2)] [AdaptiveAvgPool2d] [Dropout/Identity] flatten Linear rest…``
where the adaptive average pool is global (→ "mean": ResNet, EfficientNet; the
module or ``F.adaptive_avg_pool2d(x, (1, 1))`` as torchvision's MobileNetV2 calls
it) or keeps the spatial size (VGG's 7×7 after its last max pool). Without pooling,
flatten + Linear is a 1×1 "max" window per position (each player alone).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import fx, nn

from .split import Tail


@dataclass
class LinearHead:
    """The first linear layer of a tail and how the activation reaches it.

    pool: "mean" (global average) or "max" (non-overlapping k×k windows; k = 1
    means no pooling). ``rest`` maps the linear layer's output (N, O) to logits.
    """

    pool: str
    k: int
    linear: nn.Linear
    rest: Callable[[torch.Tensor], torch.Tensor]
    rest_modules: list


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def find_linear_head(tail: Tail, h: int, w: int) -> Optional[LinearHead]:
    """The tail's linear head for an (h, w) activation, or None when the tail has
    another shape (then the general coalition path is used)."""
    gm = tail.graph_module
    if gm is None or tail.n_sides:
        return None
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        return None
    node, pool, k, hw, flat = placeholders[0], None, 1, (h, w), False
    while True:
        users = list(node.users)
        if len(users) != 1:
            return None
        node = users[0]
        mod = modules.get(node.target) if node.op == "call_module" else None
        if isinstance(mod, nn.MaxPool2d) and pool is None and not flat:
            ks, st = _pair(mod.kernel_size), _pair(mod.stride or mod.kernel_size)
            if ks != st or ks[0] != ks[1] or ks[0] > 2 or _pair(mod.padding) != (0, 0) \
                    or _pair(mod.dilation) != (1, 1) or mod.ceil_mode:
                return None
            pool, k, hw = "max", ks[0], (hw[0] // ks[0], hw[1] // ks[0])
        elif isinstance(mod, nn.AdaptiveAvgPool2d) and not flat:
            out = _pair(mod.output_size)
            if out == (1, 1) and pool is None:
                pool, hw = "mean", (1, 1)
            elif out != hw:
                return None
        elif node.op == "call_function" and node.target is F.adaptive_avg_pool2d and not flat \
                and pool is None and len(node.args) == 2 and not node.kwargs \
                and _pair(node.args[1]) == (1, 1):
            pool, hw = "mean", (1, 1)
        elif isinstance(mod, (nn.Dropout, nn.Identity)) and not (mod.training if isinstance(mod, nn.Dropout) else False):
            continue
        elif isinstance(mod, nn.Flatten) and mod.start_dim == 1 and mod.end_dim == -1:
            flat = True
        elif node.op == "call_function" and node.target is torch.flatten and \
                node.args[1:] in ((1,), ()) and node.kwargs == {} and len(node.args) == 2:
            flat = True
        elif isinstance(mod, nn.Linear) and flat:
            break
        else:
            return None
    linear = mod
    if linear.in_features != -1 and hw[0] * hw[1] and linear.in_features % (hw[0] * hw[1]):
        return None
    rest_graph = fx.Graph()
    env = {node: rest_graph.placeholder("pre")}
    rest_modules = []
    for n in nodes[nodes.index(node) + 1:]:
        try:
            env[n] = rest_graph.node_copy(n, lambda a: env[a])
        except KeyError:
            return None                      # the rest needs a value from before the linear layer
        if n.op == "call_module":
            rest_modules.append(modules[n.target])
    rest = fx.GraphModule(gm, rest_graph)
    return LinearHead(pool or "max", k, linear, rest, rest_modules)
