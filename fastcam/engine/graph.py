"""The inference graph: the copy of a user's model that the engine's passes run on.

Every pass fastcam makes treats the model's parameters as constants (no method
or metric differentiates them), and eval-mode batch normalisation is then an
affine map that folds into the convolution before it
(:mod:`fastcam.network.fold`) — which eager PyTorch cannot do for the user's
module as given. So the engine runs on a copy of the model with

- every foldable ``Conv2d → BatchNorm2d`` pair folded (never a convolution whose
  own output a pass observes: a target layer or a split point);
- parameters with ``requires_grad=False`` (a backward from a target score stops
  at the target layer or the input: the layers before the target layer record
  no autograd graph at all);
- 4-D weights in channels-last memory format (with the engine's ``channels_last``);
- with ``compile=True``, ``torch.compile`` of that copy with inductor's
  ``freezing`` (parameters folded into the compiled code), kept with the copy.

The copy is made once per model (and memory format) and shared by every
explainer, metric and :func:`fastcam.explain` call on that model; it is held by a
weak-key table, so it is freed with the model, and it holds no reference to the
model. Memory: one extra copy of the weights.

**Staleness.** Before each pass the model's parameters and buffers are compared
with what the copy was made from — identity, data pointer and version counter
of each tensor, and the identity of each submodule: any in-place write through
autograd-visible ops (``optimizer.step()``, ``load_state_dict``, ``p.add_`` under
``no_grad``, a batch norm's training-mode update of ``num_batches_tracked``), a
reassigned parameter or a replaced submodule rebuilds the copy. A write through
``p.data`` bypasses version counters and is not seen: call :func:`refresh` after one.

**When the user's model runs as given instead** (the reason is
:func:`graph_status`): a module in training mode (batch norm then uses batch
statistics, dropout is random); a module with hooks, or global module hooks
(the copy would not call them: front-ends that hook the model, and a
user's own hooks, see the model run); a model without a foldable pair (nothing to
gain; unless ``compile=True``); a model ``copy.deepcopy`` cannot copy; a pass in
bf16/fp16 precision, and a half-precision model, which do not fold (the folded bias
would be rounded as a whole: :mod:`fastcam.network.fold`).
"""
from __future__ import annotations

import copy
import weakref
from typing import Collection, Optional, Sequence

import torch
from torch import nn

from ..network.fold import fold_batchnorm, foldable_pairs

__all__ = ["InferenceGraph", "graph_for", "graph_status", "refresh"]


def _global_hooks() -> bool:
    g = nn.modules.module
    return bool(g._global_forward_hooks or g._global_forward_pre_hooks
                or g._global_backward_hooks or g._global_backward_pre_hooks)


def _inspect(model: nn.Module) -> tuple[Optional[str], list]:
    """(why ``model`` must run as given or None, its signature): one walk over the
    modules. The signature is what a copy depends on: each submodule's identity
    and, for each parameter and buffer, identity, data pointer and version
    counter; and the batch norms' ``eps``."""
    signature: list = []
    for m in model.modules():
        if m.training or m._forward_hooks or m._forward_pre_hooks or m._backward_hooks \
                or m._backward_pre_hooks:
            name = next(n for n, sub in model.named_modules() if sub is m) or type(model).__name__
            return (f"module {name!r} is in training mode" if m.training
                    else f"module {name!r} has hooks"), signature
        signature.append(id(m))
        for t in m._parameters.values():
            if t is not None:
                signature += (id(t), t.data_ptr(), t._version)
        for t in m._buffers.values():
            if t is not None:
                signature += (id(t), t.data_ptr(), t._version)
        if isinstance(m, nn.BatchNorm2d):
            signature.append(m.eps)
    if _global_hooks():
        return "global module hooks are registered", signature
    return None, signature


def ineligible(model: nn.Module) -> Optional[str]:
    """Why ``model`` must run as given (module docstring), or None."""
    return _inspect(model)[0]


class InferenceGraph:
    """The engine's copy of one model (module docstring). ``module`` is the copy
    (None when nothing is folded and nothing compiled: the model then runs as
    given); ``folded`` lists the (conv, batch norm) names folded; ``layer(m)``
    maps a submodule of the user's model to its counterpart in the copy."""

    def __init__(self, model: nn.Module, *, channels_last: bool, protected: frozenset[str],
                 signature: list, build: bool, all_pairs: Optional[list] = None):
        self.signature = signature
        self.channels_last = channels_last
        self._names = {id(m): name for name, m in model.named_modules()}
        #: every foldable pair, observed or not (traced once per signature)
        self.all_pairs = foldable_pairs(model) if all_pairs is None else all_pairs
        self.protected = protected
        self.pairs = [(c, b) for c, b in self.all_pairs if c not in protected]
        self.folded: list[tuple[str, str]] = []
        self.module: Optional[nn.Module] = None
        self._compiled: dict = {}
        if self.pairs or build:
            self._build(model)

    def _build(self, model: nn.Module) -> None:
        # normal tensors even when the first pass runs under inference mode: later
        # passes differentiate through the copy (inference tensors cannot be saved)
        with torch.inference_mode(False), torch.no_grad():
            module = copy.deepcopy(model)
            for p in module.parameters():
                p.requires_grad_(False)
                p.grad = None
            self.folded = fold_batchnorm(module, self.protected)
            if self.channels_last:
                module = module.to(memory_format=torch.channels_last)
        self.module = module

    def folds(self, names: Collection[str]) -> bool:
        """Whether one of the module ``names`` is a convolution folded here."""
        folded = {c for c, _ in self.pairs}
        return any(n in folded for n in names)

    def foldable(self, protected: Collection[str]) -> bool:
        """Whether a pair would fold with the convolutions ``protected`` kept."""
        return any(c not in protected for c, _ in self.all_pairs)

    def name(self, layer: nn.Module) -> Optional[str]:
        return self._names.get(id(layer))

    def layer(self, layer: nn.Module) -> nn.Module:
        """The copy's counterpart of the user's submodule ``layer``."""
        assert self.module is not None
        return self.module.get_submodule(self._names[id(layer)])

    def compiled(self, precision: str) -> nn.Module:
        """``torch.compile`` of the copy with inductor freezing (used under no-grad;
        torch recompiles per input shape and grad mode)."""
        assert self.module is not None
        if precision not in self._compiled:
            self._compiled[precision] = torch.compile(self.module, options={"freezing": True})
        return self._compiled[precision]


#: model -> {channels_last: InferenceGraph}; weak, and no graph refers to its model
_GRAPHS: "weakref.WeakKeyDictionary[nn.Module, dict[bool, InferenceGraph]]" = weakref.WeakKeyDictionary()
#: model -> why its last pass ran it as given (``graph_status``)
_REASONS: "weakref.WeakKeyDictionary[nn.Module, str]" = weakref.WeakKeyDictionary()


def graph_for(model: nn.Module, *, channels_last: bool, observed: Sequence[nn.Module] = (),
              compile: bool = False) -> Optional[InferenceGraph]:
    """The inference graph the next pass of ``model`` runs on, or None when the
    model runs as given (:func:`graph_status` says why). ``observed``: the
    submodules whose outputs the pass hooks or splits at (never folded away);
    the cached copy is rebuilt when the model changed or when it folded one of
    them (the rebuilt copy keeps every layer observed before unfolded too)."""
    reason, signature = _inspect(model)
    if reason is None:
        per_model = _GRAPHS.setdefault(model, {})
        graph = per_model.get(channels_last)
        if graph is not None and graph.signature == signature:
            names = [graph.name(m) for m in observed]
        else:
            known = {id(m): name for name, m in model.named_modules()}
            names = [known.get(id(m)) for m in observed]
        if None in names:
            reason = "a target layer is not a submodule of the model"
    if reason is not None:
        _REASONS[model] = reason
        return None
    same = graph is not None and graph.signature == signature
    build = not same or graph.folds(names) or (compile and graph.module is None) \
        or (graph.module is None and graph.foldable(names))
    if build:
        # Keep the layers observed before unfolded too (no rebuild when explainers with
        # different convolution targets alternate), unless that leaves nothing to fold.
        protected = frozenset(names)
        if same and graph.foldable(protected | graph.protected):
            protected |= graph.protected
        try:
            graph = InferenceGraph(model, channels_last=channels_last, protected=protected,
                                   signature=signature, build=compile,
                                   all_pairs=graph.all_pairs if same else None)
        except Exception as err:  # deepcopy of user code (locks, handles...), fx on user code
            _REASONS[model] = f"the model could not be copied ({type(err).__name__}: {err})"
            per_model.pop(channels_last, None)
            return None
        per_model[channels_last] = graph
    if graph.module is None:
        _REASONS[model] = "no convolution followed by a foldable batch norm"
        return None
    _REASONS.pop(model, None)
    return graph


def run_as_given(model: nn.Module, reason: str) -> None:
    """Record that the engine ran ``model`` as given, and why (:func:`graph_status`)."""
    _REASONS[model] = reason


def graph_status(model: nn.Module) -> str:
    """How the last engine pass of ``model`` ran: ``"inference graph (N batch norms
    folded)"`` or ``"as given: <reason>"`` (``"not run yet"`` before any pass)."""
    if model in _REASONS:
        return f"as given: {_REASONS[model]}"
    graphs = _GRAPHS.get(model)
    if not graphs:
        return "not run yet"
    folded = max(len(g.folded) for g in graphs.values())
    return f"inference graph ({folded} batch norms folded)"


def refresh(model: nn.Module) -> None:
    """Drop ``model``'s inference graph: the next pass copies it again (needed only
    after a write through ``.data``, which version counters do not see)."""
    _GRAPHS.pop(model, None)
    _REASONS.pop(model, None)
