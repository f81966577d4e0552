"""The front-end base class: TorchCAM 0.5's extractor protocol on fastcam's methods.

TorchCAM's protocol (``torchcam.methods.core._CAM``): hooks are set on the
target layers when the extractor is built, the user runs the forward, and a
call ``cam(class_idx, scores)`` turns what the hooks recorded into one map per
target layer at the layer's resolution, ``ReLU(Σ_k w_k A_k)`` (no ReLU for CAM)
scaled per map as ``(M − min) / (max − min + 1e-8)`` when ``normalized``.

Here a call wraps the recorded activations and the user's scores in a
:class:`fastcam.methods.base.CallContext` and asks the native fastcam method
for its channel weights (or element-wise terms), so the numerics are those of
:mod:`fastcam.methods` (their :mod:`fastcam.compat.numerics` classes where TorchCAM's differ).
"""
from __future__ import annotations

import contextlib
import difflib
import logging
import numbers
from typing import Any, Callable, ClassVar, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ....methods.base import BaseCAM as _Method
from ....methods.base import CallContext
from ....network.layers import find_spatial_layer
from ...numerics import fuse_cams, largest_shape, normalize, resize_map  # noqa: F401 (re-exported)
from ....targets import Targets

__all__ = ["_CAM", "OutputTarget", "MissingForwardError"]

logger = logging.getLogger(__name__)

#: TorchCAM's scalar output target: one sample's model output -> a scalar tensor
OutputTarget = Callable[[Any], Tensor]
LayerArg = Union[None, str, nn.Module, Sequence[Union[str, nn.Module]]]
ClassIdx = Union[int, Sequence[int]]


class MissingForwardError(AssertionError, RuntimeError):
    """The extractor was called before the model ran a forward with its hooks on.

    TorchCAM raises ``AssertionError`` here; this is one (and a ``RuntimeError``)."""


def _model_eval(model: nn.Module) -> contextlib.AbstractContextManager:
    """``model`` in eval mode for the duration, every module's flag restored after
    (TorchCAM's reruns and its layer search run so)."""
    @contextlib.contextmanager
    def scope() -> Iterator[None]:
        modes = [(m, m.training) for m in model.modules()]
        try:
            model.eval()
            yield
        finally:
            for m, training in modes:
                m.training = training
    return scope()


def locate_candidate_layer(model: nn.Module, input_shape: tuple[int, ...] = (3, 224, 224)) -> Optional[str]:
    """TorchCAM's automatic target layer: the last module (in the order forwards
    finish) whose output on a zero input of ``input_shape`` has the input's number
    of dims and a spatial size other than all ones (the model in eval mode for the
    dry run; :func:`fastcam.network.layers.find_spatial_layer`); None when there is none."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    with _model_eval(model):
        try:
            layer = find_spatial_layer(model, torch.zeros((1, *input_shape), device=device),
                                       include_root=True)
        except ValueError:
            return None
    return next(n for n, m in model.named_modules() if m is layer)


def target_scores(output: Any, targets: Union[OutputTarget, Sequence[OutputTarget]]) -> Tensor:
    """(N,) scores of TorchCAM-style output targets: one callable for the batch or
    one per sample, each applied to its sample's output (differentiable)."""
    if isinstance(output, Tensor):
        if output.dim() == 0:
            raise ValueError("the model output must have a batch dimension")
        samples = list(output.unbind(0))
    elif isinstance(output, list):
        samples = output
    else:
        raise TypeError(f"the model output must be a tensor or a per-sample list, got {type(output).__name__}")
    fns = _target_list(targets, len(samples))
    values = [fn(s) for fn, s in zip(fns, samples)]
    if any(not isinstance(v, Tensor) or v.numel() != 1 for v in values):
        raise ValueError("each target must return a scalar tensor")
    return torch.stack([v.reshape(()) for v in values])


def _target_list(targets: Union[OutputTarget, Sequence[OutputTarget]], batch: int) -> list[OutputTarget]:
    if callable(targets):
        return [targets] * batch
    if not isinstance(targets, (list, tuple)) or not all(callable(t) for t in targets):
        raise TypeError("targets must be a callable or a list of callables")
    if len(targets) != batch:
        raise ValueError(f"got {len(targets)} targets for a batch of {batch}")
    return list(targets)


def check_cams(cams: Any) -> None:
    """TorchCAM's checks of the per-layer maps given to a fusion."""
    if not isinstance(cams, list) or any(not isinstance(c, Tensor) for c in cams):
        raise TypeError("invalid argument type for `cams`: a list of tensors")
    if not cams:
        raise ValueError("argument `cams` cannot be an empty list")




class HookScope:
    """A ``with`` block over an extractor: on exit its hooks are removed and what
    they recorded is forgotten (``remove_hooks``, then ``reset_hooks``)."""

    def remove_hooks(self) -> None:
        raise NotImplementedError

    def reset_hooks(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.remove_hooks()
        finally:
            self.reset_hooks()


class _CAM(HookScope):
    """A class activation map extractor with TorchCAM 0.5's interface.

    Args:
        model: the network (its mode, parameters and ``.grad`` are left as they are).
        target_layer: a module, its dotted name, or a list of those; None ->
            TorchCAM's search (:func:`locate_candidate_layer`) on a zero input of
            ``input_shape``, with a logged warning naming the layer.
        input_shape: the input's shape without the batch dim (only for the search).
        enable_hooks: whether the hooks record from the start (see :meth:`enable_hooks`).
        reshape_transform: applied to each recorded activation (and, for
            gradient methods, to its gradient) to give (N, K, h, w).

    Hooks are registered here and stay until :meth:`remove_hooks` (or the end
    of a ``with`` block). A call returns a list of float maps (N, h, w), one per
    target layer, on the activations' device.
    """

    #: the fastcam method behind the class (None: the class computes its weights itself)
    native: ClassVar[Optional[type[_Method]]] = None
    #: ReLU of the map before the scaling (TorchCAM: every method but CAM)
    relu: ClassVar[bool] = True
    #: the call needs the model's output scores
    score_used: ClassVar[bool] = False
    #: the call accepts ``targets=`` (TorchCAM's scalar output targets)
    targets_supported: ClassVar[bool] = False
    #: the target layers' outputs are kept in autograd (gradient methods)
    keeps_graph: ClassVar[bool] = False
    #: the model's input is recorded by a forward pre-hook (perturbation methods)
    records_input: ClassVar[bool] = False

    def __init__(self, model: nn.Module, target_layer: LayerArg = None,
                 input_shape: tuple[int, ...] = (3, 224, 224), enable_hooks: bool = True,
                 reshape_transform: Optional[Callable[[Tensor], Tensor]] = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if reshape_transform is not None and not callable(reshape_transform):
            raise TypeError("`reshape_transform` must be callable")
        if reshape_transform is not None and target_layer is None:
            raise ValueError("`target_layer` must be specified when using `reshape_transform`")
        self.model = model
        self.submodule_dict = dict(model.named_modules())
        self.target_names = self._target_names(target_layer, input_shape)
        self._reshape_transform = reshape_transform
        self._layers = [self.submodule_dict[n] for n in self.target_names]
        self._method = self._make_method()
        self.reset_hooks()
        self.hook_handles: list[torch.utils.hooks.RemovableHandle] = []
        for idx, layer in enumerate(self._layers):
            self.hook_handles.append(layer.register_forward_hook(self._activation_hook(idx)))
        if self.records_input:
            self.hook_handles.append(model.register_forward_pre_hook(self._store_input))
        self._hooks_enabled = bool(enable_hooks)

    # -- construction ------------------------------------------------------------------
    def _target_names(self, target_layer: LayerArg, input_shape: tuple[int, ...]) -> list[str]:
        if isinstance(target_layer, str):
            names = [target_layer]
        elif isinstance(target_layer, nn.Module):
            names = [self._resolve_layer_name(target_layer)]
        elif isinstance(target_layer, (list, tuple)):
            if not target_layer:
                raise ValueError("`target_layer` is an empty list")
            if any(not isinstance(t, (str, nn.Module)) for t in target_layer):
                raise TypeError("invalid argument type for `target_layer`: a module, a name or a list of those")
            names = [t if isinstance(t, str) else self._resolve_layer_name(t) for t in target_layer]
        elif target_layer is None:
            name = locate_candidate_layer(self.model, input_shape)
            if name is None:
                raise ValueError("no layer with a spatial output found: specify `target_layer` "
                                 "(see `model.named_modules()`) or fix `input_shape`")
            logger.warning(f"no value was provided for `target_layer`, thus set to '{name}'.")
            names = [name]
        else:
            raise TypeError("invalid argument type for `target_layer`: a module, a name or a list of those")
        missing = [n for n in names if n not in self.submodule_dict]
        if missing:
            hints = {n: m for n in missing if (m := difflib.get_close_matches(n, list(self.submodule_dict)))}
            found = f", closest matches: {hints}" if hints else ""
            raise ValueError(f"unknown `target_layer` names: {missing}{found}; see `model.named_modules()`")
        return names

    def _resolve_layer_name(self, layer: nn.Module) -> str:
        for name, module in self.submodule_dict.items():
            if module is layer:
                return name
        raise ValueError("unable to locate module inside the specified model.")

    def _make_method(self) -> Optional[_Method]:
        """The native method instance (its engine runs any extra model pass)."""
        return None if self.native is None else self.native(self.model, self._layers)

    # -- hooks -----------------------------------------------------------------------------
    def _activation_hook(self, idx: int):
        def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
            if not self._hooks_enabled:
                return
            if self.keeps_graph:
                self._hook_outputs[idx] = output
            if self._reshape_transform is not None:
                output = self._reshape_transform(output)
            self.hook_a[idx] = output.detach()
        return hook

    def _store_input(self, _module: nn.Module, inputs: tuple[Any, ...]) -> None:
        if self._hooks_enabled:
            with torch.inference_mode(False):     # a forward under inference mode: a normal copy
                self._input = inputs[0].detach().clone()

    def enable_hooks(self) -> None:
        """Let the hooks record the next forwards."""
        self._hooks_enabled = True

    def disable_hooks(self) -> None:
        """Keep the hooks registered but let them record nothing."""
        self._hooks_enabled = False

    @contextlib.contextmanager
    def _hooks_off(self) -> Iterator[None]:
        previous = self._hooks_enabled
        self._hooks_enabled = False
        try:
            yield
        finally:
            self._hooks_enabled = previous

    def reset_hooks(self) -> None:
        """Forget the recorded activations, outputs, gradients and input."""
        self.hook_a: list[Optional[Tensor]] = [None] * len(self.target_names)
        self.hook_g: list[Optional[Tensor]] = [None] * len(self.target_names)
        self._hook_outputs: list[Optional[Tensor]] = [None] * len(self.target_names)
        self._input: Optional[Tensor] = None

    def remove_hooks(self) -> None:
        """Remove every hook this extractor put on the model."""
        for handle in self.hook_handles:
            handle.remove()
        self.hook_handles.clear()

    # -- the call --------------------------------------------------------------------------
    def _precheck(self, class_idx: Optional[ClassIdx], scores: Any,
                  targets: Optional[Union[OutputTarget, Sequence[OutputTarget]]]) -> None:
        if (class_idx is None) == (targets is None):
            raise ValueError("provide exactly one of class_idx or targets")
        if targets is not None and not self.targets_supported:
            raise ValueError(f"{type(self).__name__} does not support arbitrary output targets")
        for name, fmap in zip(self.target_names, self.hook_a):
            if not isinstance(fmap, Tensor):
                raise MissingForwardError(
                    f"no activation recorded at target layer '{name}': run the model on the input "
                    "(`out = model(x)`) with the extractor's hooks enabled before calling it")
        if self.records_input and self._input is None:
            raise MissingForwardError("no model input recorded: run the model on the input "
                                      "with the extractor's hooks enabled before calling it")
        batch = self.hook_a[0].shape[0]
        if targets is not None:
            _target_list(targets, batch)
        else:
            self._check_class_idx(class_idx, batch, scores)
        if self.score_used and scores is None:
            raise ValueError("model output scores is required to be passed to compute CAMs: "
                             "cam(class_idx, scores=model(x))")
        if self.score_used and targets is None and not isinstance(scores, Tensor):
            raise TypeError("model output scores must be a tensor when using class_idx")

    def _num_classes(self, scores: Any) -> Optional[int]:
        return scores.shape[1] if isinstance(scores, Tensor) and scores.dim() == 2 else None

    def _check_class_idx(self, class_idx: Any, batch: int, scores: Any) -> None:
        def is_index(c: Any) -> bool:
            return isinstance(c, numbers.Integral) and not isinstance(c, bool)
        if is_index(class_idx):
            idx = [int(class_idx)]
        elif isinstance(class_idx, (list, tuple)) and all(is_index(c) for c in class_idx):
            if len(class_idx) != batch:
                raise ValueError(f"expected batch size and length of `class_idx` to be the same: "
                                 f"got {len(class_idx)} class indices for a batch of {batch}")
            idx = [int(c) for c in class_idx]
        else:
            raise ValueError(f"Incorrect `class_idx` argument value: {class_idx!r} (an int or a "
                             "list of ints, one per sample)")
        classes = self._num_classes(scores)
        if any(c < 0 for c in idx) or (classes is not None and any(c >= classes for c in idx)):
            bound = f"[0, {classes})" if classes is not None else ">= 0"
            raise ValueError(f"Incorrect `class_idx` argument value: {class_idx!r} is outside {bound}")

    def __call__(self, class_idx: Optional[ClassIdx] = None, scores: Any = None, normalized: bool = True,
                 *, targets: Optional[Union[OutputTarget, Sequence[OutputTarget]]] = None,
                 **kwargs: Any) -> list[Tensor]:
        """Maps (N, h, w) of the last recorded forward, one per target layer.

        Args:
            class_idx: one class for the batch or one per sample.
            scores: the model's output on the recorded forward (gradient methods need it).
            normalized: scale each map to [0, 1] (TorchCAM's ``(M−min)/(max−min+1e-8)``).
            targets: instead of ``class_idx``, a callable (or one per sample) of a
                sample's output returning a scalar (methods that support it).
        """
        self._precheck(class_idx, scores, targets)
        return self.compute_cams(class_idx, scores, normalized, targets=targets, **kwargs)

    def compute_cams(self, class_idx: Optional[ClassIdx] = None, scores: Any = None, normalized: bool = True,
                     *, targets: Optional[Union[OutputTarget, Sequence[OutputTarget]]] = None,
                     **kwargs: Any) -> list[Tensor]:
        """:meth:`__call__` without its checks (TorchCAM's ``compute_cams``)."""
        weights = self._get_weights(class_idx, scores, targets=targets, **kwargs)
        cams = []
        with torch.no_grad():
            for w, A in zip(weights, self.hook_a):
                w = w.to(A.dtype)
                w = w.reshape(*w.shape, *([1] * (A.dim() - w.dim())))
                cam = torch.nansum(w * A, dim=1)
                if self.relu:
                    cam = torch.relu(cam)
                cams.append(normalize(cam, spatial_dims=cam.dim() - 1) if normalized else cam)
        return cams

    # -- what a class defines ------------------------------------------------------------------
    def _get_weights(self, class_idx: Optional[ClassIdx], scores: Any, *,
                     targets: Any = None, **kwargs: Any) -> list[Tensor]:
        """Per-layer weights (N, K) (or element-wise (N, K, h, w)) of the recorded forward."""
        raise NotImplementedError

    def _class_indices(self, class_idx: ClassIdx, batch: int, device: torch.device) -> Tensor:
        if isinstance(class_idx, numbers.Integral):
            return torch.full((batch,), int(class_idx), dtype=torch.long, device=device)
        return torch.tensor([int(c) for c in class_idx], dtype=torch.long, device=device)

    def _resolved_targets(self, class_idx: Optional[ClassIdx], targets: Any, batch: int,
                          device: torch.device) -> Targets:
        """fastcam's targets of a call: the class indices, or the output-target callables."""
        if targets is not None:
            return Targets(None, _target_list(targets, batch))
        return Targets(self._class_indices(class_idx, batch, device), None)

    def _context(self, activations: list[Tensor], targets: Targets, *,
                 gradients: Optional[list[Tensor]] = None, x: Optional[Tensor] = None,
                 logits: Optional[Tensor] = None) -> CallContext:
        """The native method's context of the recorded forward: what the hooks recorded
        (activations, their gradients, the input where the method reruns the model),
        nothing made up (:meth:`fastcam.methods.base.CallContext.recorded`)."""
        return CallContext.recorded(list(self._layers), activations, targets,
                                    gradients=gradients, x=x, logits=logits)

    # -- fusion --------------------------------------------------------------------------------
    @classmethod
    def fuse_cams(cls, cams: list[Tensor], target_shape: Optional[tuple[int, int]] = None) -> Tensor:
        """TorchCAM's fusion of per-layer maps: each map (scaled by :meth:`_scale_cams`)
        resized bilinearly (align_corners=False) to ``target_shape`` (default the
        largest size per dim), then their element-wise maximum."""
        check_cams(cams)
        if len(cams) == 1:
            return cams[0]
        return fuse_cams(cls._scale_cams(cams), target_shape if isinstance(target_shape, tuple) else None)

    @staticmethod
    def _scale_cams(cams: list[Tensor]) -> list[Tensor]:
        return cams

    def _extra_repr(self) -> str:
        return f"target_layer={self.target_names}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._extra_repr()})"
