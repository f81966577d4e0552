"""Splitting a model at a target layer into ``prefix`` (input -> the layer's
output ``A``) and ``tail`` (``A`` -> logits), so that ``tail(prefix(x)) == model(x)``.

The split is built with torch.fx: the model is symbolically traced with the
target layer kept as one opaque call, and the graph is cut at that call's
output. The prefix graph keeps the nodes the activation needs; the tail graph
takes the activation as its input and keeps the nodes that depend on it. The
Shapley methods evaluate the tail many times per image, and LIFT-CAM runs its
DeepLIFT pass on the tail graph node by node (:mod:`fastcam.network.deeplift`).

Two things a clean cut does not cover:

* **side values** -- a tail node can need a value from before the cut that
  does not go through the layer (the skip connection of a residual block when
  the target layer is inside the block). The prefix then also computes these,
  keeps them from its most recent call, and the tail uses them; a tail batch of
  ``r * B`` rows (``B`` = the batch of the last prefix call) is read as ``r``
  consecutive blocks of ``B`` images (the ``torch.cat`` layout), each block
  getting the side values of images ``0..B-1``.
* **untraceable models** (data-dependent control flow, calls fx cannot
  follow): a warning says so once, and the split falls back to forward hooks:
  the prefix runs the model until the layer's output, and the tail re-runs the
  model on the last prefix input with a hook that substitutes the layer's
  output -- correct for any model, but the layers before the target run again
  on every tail call (and the tail batch follows the same ``r * B`` rule).

The first prefix call checks ``tail(prefix(x))`` against ``model(x)``
numerically; if the traced graph does not reproduce the model (fx bakes Python
values in at trace time), the split warns and switches to the hook path.

Splits are cached per (model, layer): ``split`` returns the same pair again as
long as the model's submodules are the ones the graph was traced with.
"""
from __future__ import annotations

import operator
import warnings
import weakref
from typing import Callable, Optional, Union

import torch
from torch import Tensor, fx, nn

from ..inputs import all_finite
from .layers import layer_name, resolve_layers

__all__ = ["split", "SplitError"]


class SplitError(ValueError):
    """The model cannot be split at the requested layer."""


class _ModelSplitError(SplitError):
    """A property of the model itself (not of torch.fx's trace): falling back to
    hooks cannot help, so it is raised, not turned into a fallback."""


class _StopForward(Exception):
    """Raised by a hook to end a forward pass once the target layer has run."""


# -- the shared state of one split -------------------------------------------------

class _SplitState:
    """What the prefix and tail of one split share."""

    def __init__(self, model: nn.Module, layer: nn.Module, layer_name: str):
        self.model_ref = weakref.ref(model)
        self.layer_ref = weakref.ref(layer)
        self.layer_name = layer_name
        self.mode = "fx"                       # "fx" or "hooks"
        self.prefix_gm: Optional[fx.GraphModule] = None
        self.tail_gm: Optional[fx.GraphModule] = None
        self.n_sides = 0
        self.module_refs: dict[str, weakref.ref] = {}
        self.attributes: tuple = ()            # fx mode: _plain_attributes(model) when traced
        self.verified = False
        # the context of the most recent prefix call
        self.sides: tuple = ()
        self.batch: Optional[int] = None
        self.x: Optional[Tensor] = None        # hook mode only
        self.layer_calls: Optional[int] = None  # hook mode: calls of the layer per forward

    @property
    def model(self) -> nn.Module:
        model = self.model_ref()
        if model is None:
            raise RuntimeError("the model of this split no longer exists")
        return model

    @property
    def layer(self) -> nn.Module:
        layer = self.layer_ref()
        if layer is None:
            raise RuntimeError("the target layer of this split no longer exists")
        return layer

    def still_valid(self, model: nn.Module) -> bool:
        """The submodules the graphs call are still the model's submodules, and
        no plain Python attribute of a module (which a trace bakes in) changed."""
        if self.model_ref() is not model or _plain_attributes(model) != self.attributes:
            return False
        try:
            for name, ref in self.module_refs.items():
                if model.get_submodule(name) is not ref():
                    return False
        except AttributeError:
            return False
        return True


_PLAIN = (bool, int, float, complex, str, type(None))


def _plain_attributes(model: nn.Module) -> tuple:
    """Every module's plain attributes (numbers, strings, None, tuples of them):
    what torch.fx turns into constants of the traced graph. The ``training``
    flag is left out: the layers that read it (batch norm, dropout) stay modules
    in the graph and read it when they run (a Python ``if self.training`` in a
    forward would be baked in, and is not detected)."""
    out = []
    for name, module in model.named_modules():
        for key, value in vars(module).items():
            if key == "training":
                continue
            if isinstance(value, _PLAIN) or (isinstance(value, tuple)
                                              and all(isinstance(v, _PLAIN) for v in value)):
                out.append((name, key, value))
    return tuple(out)


def _repeat_rows(value, rows: int, batch: int):
    """Side value of batch ``batch`` repeated to ``rows`` rows (cat layout)."""
    if not isinstance(value, Tensor) or value.dim() == 0 or value.shape[0] != batch or rows == batch:
        return value
    if rows % batch:
        raise ValueError(f"the tail got {rows} rows; with the values this split keeps from the "
                         f"prefix (batch {batch}) it needs a multiple of {batch}")
    return value.repeat(rows // batch, *([1] * (value.dim() - 1)))


# -- the modules handed out -----------------------------------------------------------

class Prefix(nn.Module):
    """``x -> A``: the model up to the target layer's output (see :func:`split`)."""

    def __init__(self, state: _SplitState):
        super().__init__()
        self._state = state

    @property
    def graph_module(self) -> Optional[fx.GraphModule]:
        """The traced prefix (fx mode), else None."""
        return self._state.prefix_gm if self._state.mode == "fx" else None

    @property
    def mode(self) -> str:
        return self._state.mode

    def forward(self, x: Tensor, *args, **kwargs) -> Tensor:
        state = self._state
        if state.mode == "fx":
            out = state.prefix_gm(x, *args, **kwargs)
            if state.n_sides:
                A, *sides = out
                state.sides = tuple(sides)
            else:
                A = out
        else:
            A = _hook_prefix(state, x)
        state.batch = x.shape[0] if isinstance(x, Tensor) and x.dim() else None
        if not isinstance(A, Tensor):
            raise SplitError(f"the target layer {state.layer_name!r} returned "
                             f"{type(A).__name__}, not a tensor")
        if not state.verified:
            _verify(state, x, A)
            if state.mode == "hooks" and state.prefix_gm is not None:
                # the check switched this split to the hook path: recompute A
                state.prefix_gm = None
                return self.forward(x, *args, **kwargs)
        return A

    def extra_repr(self) -> str:
        return f"layer={self._state.layer_name!r}, mode={self._state.mode!r}"


class Tail(nn.Module):
    """``A -> logits``: the model from the target layer's output on (see :func:`split`).

    ``graph_module`` (fx mode) is the traced tail: its first placeholder is the
    activation, then one placeholder per side value."""

    def __init__(self, state: _SplitState):
        super().__init__()
        self._state = state

    @property
    def graph_module(self) -> Optional[fx.GraphModule]:
        """The traced tail (fx mode), else None."""
        return self._state.tail_gm if self._state.mode == "fx" else None

    @property
    def mode(self) -> str:
        return self._state.mode

    @property
    def n_sides(self) -> int:
        return self._state.n_sides if self._state.mode == "fx" else 0

    @property
    def layer_name(self) -> str:
        return self._state.layer_name

    @property
    def model(self) -> nn.Module:
        """The split model (held weakly)."""
        return self._state.model

    @property
    def layer(self) -> nn.Module:
        """The target layer whose output the tail takes (held weakly)."""
        return self._state.layer

    def replaced(self, A: Tensor, on_replace: Callable[[], None]) -> Tensor:
        """Hook mode: the model on the last prefix input with the layer's output
        replaced by A, calling ``on_replace()`` at the moment of the replacement
        (forward hooks of later modules can tell which calls belong to the tail)."""
        if self._state.mode != "hooks":
            raise RuntimeError("Tail.replaced runs hook-mode tails only")
        return _hook_tail(self._state, A, extra_hooks=(on_replace,))

    def side_values(self, rows: int) -> tuple:
        """The side values of the last prefix call, repeated to ``rows`` rows."""
        state = self._state
        if not state.n_sides:
            return ()
        if state.batch is None or len(state.sides) != state.n_sides:
            raise RuntimeError(f"this tail also needs values from before layer {state.layer_name!r}: "
                               "call the prefix on the batch first")
        return tuple(_repeat_rows(s, rows, state.batch) for s in state.sides)

    def forward(self, A: Tensor) -> Tensor:
        state = self._state
        if state.mode == "fx":
            return state.tail_gm(A, *self.side_values(A.shape[0]))
        return _hook_tail(state, A)

    def extra_repr(self) -> str:
        return f"layer={self._state.layer_name!r}, mode={self._state.mode!r}"


# -- the hook path ------------------------------------------------------------------

def _hook_prefix(state: _SplitState, x: Tensor) -> Tensor:
    model, layer = state.model, state.layer
    outputs: list = []
    stop_at = state.layer_calls

    def hook(_module, _inputs, output):
        outputs.append(output)
        if stop_at is not None and len(outputs) == stop_at:
            raise _StopForward

    handle = layer.register_forward_hook(hook)
    try:
        model(x)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not outputs:
        raise SplitError(f"the target layer {state.layer_name!r} did not run during the forward pass")
    if state.layer_calls is None:
        state.layer_calls = len(outputs)   # a shared layer: the last call is the cut
    state.x = x
    return outputs[-1]


def _hook_tail(state: _SplitState, A: Tensor, extra_hooks=()) -> Tensor:
    """The model on the last prefix input with the layer's output replaced by A."""
    model, layer = state.model, state.layer
    if state.x is None:
        raise RuntimeError("this tail (hook mode) re-runs the model: call the prefix first")
    x = _repeat_rows(state.x, A.shape[0], state.x.shape[0])
    calls = [0]

    def hook(_module, _inputs, output):
        calls[0] += 1
        if calls[0] == state.layer_calls:
            if tuple(output.shape) != tuple(A.shape):
                raise ValueError(f"the tail got an activation of shape {tuple(A.shape)}; the layer's "
                                 f"output has shape {tuple(output.shape)}")
            for h in extra_hooks:
                h()
            return A
        return None

    handle = layer.register_forward_hook(hook)
    try:
        return model(x)
    finally:
        handle.remove()


# -- the fx path --------------------------------------------------------------------

class _Tracer(fx.Tracer):
    def __init__(self, leaf: nn.Module):
        super().__init__()
        self._leaf = leaf

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return m is self._leaf or super().is_leaf_module(m, qualname)


def _is_inplace(node: fx.Node, modules: dict) -> bool:
    if node.kwargs.get("inplace", False) is True:
        return True
    if node.op == "call_module":
        return bool(getattr(modules.get(node.target), "inplace", False))
    if node.op == "call_method":
        name = str(node.target)
        return name.endswith("_") and not name.startswith("_")
    if node.op == "call_function":
        name = getattr(node.target, "__name__", "")
        return (name.endswith("_") and not name.startswith("_")) or node.target in (
            operator.iadd, operator.isub, operator.imul, operator.itruediv)
    return False


_VIEW_METHODS = {"view", "reshape", "flatten", "squeeze", "unsqueeze", "transpose", "permute",
                 "expand", "contiguous", "view_as", "reshape_as", "unflatten", "t", "narrow",
                 "select", "chunk", "split", "unbind", "detach", "__getitem__"}
_VIEW_FUNCTIONS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.transpose,
                   torch.permute, torch.narrow, torch.select, torch.chunk, torch.split,
                   torch.unbind, operator.getitem}
_VIEW_MODULES = (nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
                 nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _writes_into(cut: fx.Node, tail_nodes: list, modules: dict) -> bool:
    """Whether a tail op writes in place into the activation or a view of it."""
    alias = {cut}
    for n in tail_nodes:
        if not any(i in alias for i in n.all_input_nodes):
            continue
        if _is_inplace(n, modules):
            return True
        if ((n.op == "call_method" and n.target in _VIEW_METHODS)
                or (n.op == "call_function" and n.target in _VIEW_FUNCTIONS)
                or (n.op == "call_module" and isinstance(modules.get(n.target), _VIEW_MODULES))):
            alias.add(n)
    return False


def _build_fx(state: _SplitState, model: nn.Module, layer: nn.Module) -> None:
    tracer = _Tracer(layer)
    try:
        graph = tracer.trace(model)
    finally:
        # fx leaves closures that refer back to the tracer (a reference cycle);
        # emptied, the tracer no longer keeps the model alive until the next gc
        vars(tracer).clear()
    nodes = list(graph.nodes)
    cuts = [n for n in nodes if n.op == "call_module" and n.target == state.layer_name]
    if not cuts:
        raise SplitError(f"layer {state.layer_name!r} is not called in the traced forward")
    cut = cuts[-1]      # a layer that runs several times: its last call (as ActivationCapture)
    out_node = next(n for n in nodes if n.op == "output")
    if len(out_node.args) != 1 or not isinstance(out_node.args[0], fx.Node):
        raise _ModelSplitError("the model must return one tensor of logits")

    # nodes that depend on the model input / on the cut
    inputs = {n for n in nodes if n.op == "placeholder"}
    on_input: set = set()
    live: set = {cut}
    order = {n: i for i, n in enumerate(nodes)}
    for n in nodes:
        ins = n.all_input_nodes
        if n in inputs or any(i in on_input for i in ins):
            on_input.add(n)
        if n is not cut and order[n] > order[cut] and any(i in live for i in ins):
            live.add(n)
    result = out_node.args[0]
    if result not in live:
        raise _ModelSplitError(f"the model's output does not depend on layer {state.layer_name!r}")

    # what the tail needs: its live nodes plus the values they read
    needed: set = set()
    stack = [result]
    while stack:
        n = stack.pop()
        if n in needed or n is cut:
            continue
        needed.add(n)
        if n in live or n not in on_input:      # a side value is an input of the tail
            stack.extend(n.all_input_nodes)
    tail_nodes = [n for n in nodes if n in needed]
    # values from the input that do not go through the layer (a skip connection
    # around it): the prefix computes them too
    sides = [n for n in tail_nodes if n not in live and n in on_input]

    # prefix: the cut, the sides and everything they need
    pre: set = set()
    stack = [cut, *sides]
    while stack:
        n = stack.pop()
        if n in pre:
            continue
        pre.add(n)
        stack.extend(n.all_input_nodes)
    pre |= inputs                       # keep the forward's signature
    pg = fx.Graph()
    env: dict = {}
    for n in nodes:
        if n in pre:
            env[n] = pg.node_copy(n, lambda a: env[a])
    pg.output(env[cut] if not sides else (env[cut], *[env[s] for s in sides]))

    # tail: the activation (and side values) as placeholders
    tg = fx.Graph()
    tenv: dict = {}
    act = tg.placeholder("activation")
    for i, s in enumerate(sides):
        tenv[s] = tg.placeholder(f"side_{i}")
    if _writes_into(cut, tail_nodes, dict(model.named_modules())):
        # an in-place op on the activation or a view of it (VGG's ReLU(inplace=True)
        # after a conv target) must not change the caller's tensor
        act = tg.call_method("clone", (act,))
    tenv[cut] = act
    for n in tail_nodes:
        if n in tenv:
            continue
        tenv[n] = tg.node_copy(n, lambda a: tenv[a])
    tg.output(tenv[result])

    state.prefix_gm = fx.GraphModule(model, pg, class_name="Prefix")
    state.tail_gm = fx.GraphModule(model, tg, class_name="Tail")
    state.n_sides = len(sides)
    state.mode = "fx"
    used = {n.target for n in nodes if n.op == "call_module"}
    state.module_refs = {name: weakref.ref(model.get_submodule(name)) for name in used}
    state.attributes = _plain_attributes(model)


def _fall_back(state: _SplitState, reason: str) -> None:
    state.mode = "hooks"
    state.tail_gm = None
    state.n_sides = 0
    state.layer_calls = None
    warnings.warn(
        f"fastcam.split: {reason}; splitting {type(state.model).__name__} at "
        f"{state.layer_name!r} with forward hooks instead (slower: every tail call re-runs "
        "the layers before the target)", UserWarning, stacklevel=4)


def _verify(state: _SplitState, x: Tensor, A: Tensor) -> None:
    """The numeric check of the first call: tail(prefix(x)) == model(x)."""
    model = state.model
    with torch.no_grad():
        expected = model(x)
        tail = Tail(state)
        got = tail(A.clone())
    if not isinstance(expected, Tensor) or not isinstance(got, Tensor):
        raise SplitError("the model must return one tensor of logits")
    if not all_finite(expected):
        raise ValueError("the model's output (logits) contains NaN or infinite values")
    scale = max(1.0, float(expected.abs().max())) if expected.numel() else 1.0
    ok = got.shape == expected.shape and bool(torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * scale))
    if ok:
        state.verified = True
        return
    diff = float((got - expected).abs().max()) if got.shape == expected.shape else float("nan")
    if state.mode == "fx":
        _fall_back(state, f"the traced graph does not reproduce the model's output "
                          f"(max abs difference {diff:.3g})")
        return          # the caller recomputes with hooks and checks again
    raise SplitError(f"tail(prefix(x)) differs from model(x) (max abs difference {diff:.3g}) "
                     "even with the hook-based split: is the model random or stateful "
                     "(training mode, dropout)?")


# -- the entry point ------------------------------------------------------------------

_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def split(model: nn.Module, target_layer: Union[str, nn.Module]) -> tuple[Prefix, Tail]:
    """Split ``model`` at the output of ``target_layer`` (a module or dotted name).

    Returns ``(prefix, tail)``, two ``nn.Module`` views of the model (sharing
    its parameters) with ``tail(prefix(x)) == model(x)``; checked numerically
    on the first prefix call. ``prefix.mode``/``tail.mode`` is ``"fx"`` (traced
    graphs) or ``"hooks"`` (the fallback for models torch.fx cannot trace; a
    warning says so once). Cached per (model, layer).

    The tail evaluates any batch of activations independently per row, unless
    it needs values from the prefix besides the activation (``tail.n_sides``)
    or runs in hook mode: then it uses those of the most recent prefix call,
    with the tail batch read as ``r`` consecutive copies of that call's batch.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    layers = resolve_layers(model, target_layer)
    if layers is None or len(layers) != 1:
        raise ValueError("split takes exactly one target layer")
    layer = layers[0]
    if layer is model:
        raise SplitError("the target layer cannot be the model itself")
    name = layer_name(model, layer)
    per_model = _CACHE.setdefault(model, {})
    hit = per_model.get(name)
    if hit is not None:
        state, prefix, tail = hit
        if state.layer_ref() is layer and (state.mode == "hooks" or state.still_valid(model)):
            return prefix, tail
    state = _SplitState(model, layer, name)
    try:
        _build_fx(state, model, layer)
    except _ModelSplitError:
        raise
    except SplitError as err:
        _fall_back(state, f"torch.fx could not cut the traced graph ({err})")
    except Exception as err:  # fx.proxy.TraceError, TypeError, ... from user code
        _fall_back(state, f"torch.fx could not trace the model ({type(err).__name__}: {err})")
    prefix, tail = Prefix(state), Tail(state)
    per_model[name] = (state, prefix, tail)
    return prefix, tail
