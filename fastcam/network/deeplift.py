"""Batched DeepLIFT (Rescale rule) through the tail of a split network.

DeepLIFT (Shrikumar et al., ICML 2017) explains the change of an output from
a reference input to the actual input, ``Δt = t(x) − t(x⁰)``, by contributions
``C_i = m_i · Δx_i`` that sum to it exactly (summation-to-delta). Multipliers
``m = ∂ᴰᴸ t / ∂x`` follow the chain rule like gradients; each layer defines its
own:

* **linear layers** (Linear, convolutions, batch norm in eval mode, average and
  adaptive-average pooling, flatten / reshape / cat, padding, dropout in eval
  mode, sums and scaling by constants): ``Δy = W Δx`` exactly, so the
  multiplier is the layer's own gradient (the bias cancels);
* **elementwise nonlinearities** ``y = f(x)`` (ReLU, ReLU6, SiLU, GELU,
  sigmoid, tanh, hardswish, clamp ...), the Rescale rule: the secant
  ``m = (f(x) − f(x⁰)) / (x − x⁰)``, and the derivative ``f'(x)`` where
  ``|x − x⁰| < eps`` (there ``Δy`` is below ``eps·|f'|``: the sum stays exact to
  that order);
* **max pooling**, see :class:`_MaxPoolRescale`: each window's change of the
  maximum, ``Δy = max(x) − max(x⁰)``, is given to one element -- the argmax of
  the input when the maximum rose or stayed (``Δy ≥ 0``), the argmax of the
  reference when it fell -- as ``m = Δy / Δx`` of that element (0 for the
  others). For that element ``|Δx| ≥ |Δy|`` with the same sign, so
  ``m ∈ [0, 1]``: no division blow-ups, and ``Σ_window m·Δx = Δy`` exactly.
  Overlapping windows add up (scatter-add), so the sum stays exact there too.
  With a zero reference after a ReLU (VGG's last max pool), every reference
  window is constant and the rule is the ordinary max-pool gradient.
  This is the rule Captum's DeepLift implements for max pooling (its "cross
  maximum"); on LIFT-CAM's VGG16 tail the two agree to rounding. Captum 0.9
  departs from it in three places (tests/test_liftcam.py shows each): it routes
  with ``max_unpool``, which assigns instead of adding, so overlapping windows
  lose part of Δy; a ReLU feeding a max pool with a non-zero reference misses
  summation-to-delta; and where ``|Δx| < eps`` it uses the gradient of the
  batch's first row for every image (pytorch/captum#1276) -- multipliers that
  change with the batch, though only where Δx = 0, so contributions agree.

How it runs: one forward of the tail over the rows ``[A; R]`` (the ``B``
activations and the reference -- one row when it is shared, as the zero
reference of LIFT-CAM is), then one backward from the target scores of the
first ``B`` rows. Linear ops run as the graph says (their autograd gradient
is the multiplier); each nonlinear op runs as a custom autograd function whose
backward applies the Rescale multiplier instead of the derivative, and sends
nothing to the reference rows. No per-image loop, and the weights of big
fully-connected layers are read once per pass for the whole batch.

The tail is executed node by node from its torch.fx graph
(:func:`fastcam.network.split.split`); a node without a rule (softmax, layer
norm, the product of two activation-dependent tensors, batch norm in training
mode ...) is an :class:`UnsupportedLayerError` naming it, before anything runs.
For a split that fell back to hooks, the rules are attached to the tail's leaf
modules with forward hooks; functional nonlinearities are then invisible, so
that path verifies summation-to-delta and raises if it does not hold.
"""
from __future__ import annotations

import copy
import operator
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from .split import Tail

__all__ = ["DeepLift", "DeepLiftPass", "DeepLiftResult", "UnsupportedLayerError", "deeplift"]


class UnsupportedLayerError(ValueError):
    """A tail layer has no DeepLIFT rule in fastcam."""


# -- the two nonlinear rules as autograd functions -------------------------------------

class _Rescale(torch.autograd.Function):
    """``Y = f(X)`` on rows ``[x; x⁰]``; backward: ``G·m`` on the first ``n`` rows with
    the Rescale multiplier ``m``, 0 on the reference rows."""

    @staticmethod
    def forward(ctx, X: Tensor, f: Callable[[Tensor], Tensor], n: int, eps: float) -> Tensor:
        Y = f(X)
        x, x0, y, y0 = X[:n], X[n:], Y[:n], Y[n:]
        dx = x - x0
        small = dx.abs() < eps
        m = torch.zeros_like(Y)
        m[:n] = (y - y0) / torch.where(small, torch.ones_like(dx), dx)
        if bool(small.any()):
            with torch.enable_grad():
                xs = x.detach().requires_grad_(True)
                d, = torch.autograd.grad(f(xs).sum(), xs)
            m[:n] = torch.where(small, d, m[:n])
        ctx.save_for_backward(m)
        return Y

    @staticmethod
    def backward(ctx, G: Tensor):
        m, = ctx.saved_tensors
        return G * m, None, None, None


class _MaxPoolRescale(torch.autograd.Function):
    """Max pooling on rows ``[x; x⁰]`` with the DeepLIFT rule of the module docstring.

    ``pool(X) -> (Y, indices)``, indices flat over the spatial dims of each
    (row, channel) plane, as ``F.max_pool2d(..., return_indices=True)`` gives."""

    @staticmethod
    def forward(ctx, X: Tensor, pool, n: int, eps: float) -> Tensor:
        Y, idx = pool(X)
        ctx.save_for_backward(X[:n] - X[n:], Y[:n] - Y[n:], idx)
        ctx.n, ctx.eps, ctx.in_shape = n, eps, X.shape
        return Y

    @staticmethod
    def backward(ctx, G: Tensor):
        dX, dY, idx = ctx.saved_tensors
        n, eps = ctx.n, ctx.eps
        g = G[:n]
        C = g.shape[1]
        idx_in = idx[:n].reshape(n, C, -1)
        idx_ref = idx[n:].expand(n, *idx.shape[1:]).reshape(n, C, -1)
        dx = dX.reshape(n, C, -1)
        t = (g * dY).reshape(n, C, -1)
        rise = (dY >= 0).reshape(n, C, -1)
        zero = torch.zeros((), dtype=t.dtype, device=t.device)
        routed = torch.zeros_like(dx)
        if bool(rise.all()):    # no window's max fell (always so for a 0 reference after a ReLU)
            routed.scatter_add_(2, idx_in, t)
        else:
            routed.scatter_add_(2, idx_in, torch.where(rise, t, zero))
            routed.scatter_add_(2, idx_ref, torch.where(rise, zero, t))
        small = dx.abs() < eps
        grad = routed / torch.where(small, torch.ones_like(dx), dx)
        if bool(small.any()):   # the ordinary max-pool gradient where Δx ≈ 0
            plain = torch.zeros_like(dx).scatter_add_(2, idx_in, g.reshape(n, C, -1))
            grad = torch.where(small, plain, grad)
        out = G.new_zeros(ctx.in_shape)
        out[:n] = grad.reshape(dX.shape)
        return out, None, None, None


class _FewRowsLinear(torch.autograd.Function):
    """``x Wᵀ + b`` for a few rows on CPU, computed as ``(W xᵀ + b)ᵀ``.

    A tail's fully-connected layers see only B + 1 rows; for such shapes the
    CPU BLAS streams a big row-major W faster as the left operand (measured
    ~30 ms against ~43 ms for VGG16's 25088×4096 fc6 at 9 rows). Only the
    input's gradient is formed (``G W``): DeepLIFT needs no parameter gradients."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        ctx.save_for_backward(weight)
        out = weight @ x.t() if bias is None else torch.addmm(bias[:, None], weight, x.t())
        return out.t()

    @staticmethod
    def backward(ctx, G: Tensor):
        weight, = ctx.saved_tensors
        return G @ weight, None, None


_FEW_ROWS = 64


class _GlobalAvgPool(torch.autograd.Function):
    """Global average pooling (B,C,h,w) -> (B,C,1,1) whose backward returns the
    gradient as a broadcast view (G / hw, stride 0 over h, w) instead of
    materialising it: the CAM tails of ResNet, DenseNet, MobileNet and
    EfficientNet start with it, and their multipliers are uniform over space."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.shape = x.shape
        return F.adaptive_avg_pool2d(x, 1)

    @staticmethod
    def backward(ctx, G: Tensor):
        h, w = ctx.shape[-2:]
        return (G / (h * w)).expand(ctx.shape)


def _is_one(size) -> bool:
    return size == 1 or (isinstance(size, (tuple, list)) and tuple(size) == (1, 1))


def _linear(module: nn.Linear, x: Tensor) -> Tensor:
    if (x.dim() == 2 and x.shape[0] <= _FEW_ROWS and x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64) and x.dtype == module.weight.dtype
            and torch.is_grad_enabled() and not module._forward_hooks and not module._forward_pre_hooks):
        return _FewRowsLinear.apply(x, module.weight, module.bias)
    return module(x)


# -- which rule each op gets ----------------------------------------------------------

def _types(*names):
    return tuple(t for t in (getattr(nn, name, None) for name in names) if isinstance(t, type))


_LINEAR_MODULES = _types(
    "Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d", "Flatten", "Unflatten", "Identity", "ZeroPad1d", "ZeroPad2d", "ZeroPad3d",
    "ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "ReflectionPad1d", "ReflectionPad2d",
    "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d", "CircularPad1d",
    "CircularPad2d", "CircularPad3d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d",
    "PixelShuffle", "PixelUnshuffle", "ChannelShuffle")
_BATCHNORM_MODULES = _types("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm")
_DROPOUT_MODULES = _types("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                          "FeatureAlphaDropout")
_ELEMENTWISE_MODULES = _types(
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish",
    "Sigmoid", "Tanh", "Hardtanh", "Hardswish", "Hardsigmoid", "Softplus", "Softsign",
    "Tanhshrink", "LogSigmoid", "Hardshrink", "Softshrink", "Threshold")
_MAXPOOL_MODULES = _types("MaxPool1d", "MaxPool2d", "MaxPool3d", "AdaptiveMaxPool1d",
                          "AdaptiveMaxPool2d", "AdaptiveMaxPool3d")

_LINEAR_FUNCTIONS = {
    torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.transpose, torch.permute,
    torch.t, torch.narrow, torch.select, torch.chunk, torch.split, torch.unbind, torch.cat,
    torch.concat, torch.stack, operator.getitem, operator.add, operator.sub, operator.neg,
    operator.pos, torch.add, torch.sub, torch.neg, torch.mean, torch.sum, F.linear, F.conv1d,
    F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d, F.avg_pool1d,
    F.avg_pool2d, F.avg_pool3d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d, F.pad, F.interpolate, F.pixel_shuffle, F.pixel_unshuffle, getattr,
    F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout,
    F.batch_norm}
_SCALING_FUNCTIONS = {operator.mul, torch.mul, operator.truediv, torch.div, operator.matmul,
                      torch.matmul}
_ELEMENTWISE_FUNCTIONS = {
    F.relu, torch.relu, F.relu6, F.leaky_relu, F.prelu, F.elu, F.selu, torch.selu, F.celu, F.gelu,
    F.silu, F.mish, torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.hardtanh, F.hardswish,
    F.hardsigmoid, F.softplus, F.softsign, F.logsigmoid, F.tanhshrink, F.hardshrink,
    F.softshrink, F.threshold, torch.clamp, torch.clip, torch.exp}
_MAXPOOL_FUNCTIONS = {F.max_pool1d, F.max_pool2d, F.max_pool3d, F.adaptive_max_pool1d,
                      F.adaptive_max_pool2d, F.adaptive_max_pool3d}

_LINEAR_METHODS = {
    "view", "reshape", "flatten", "squeeze", "unsqueeze", "transpose", "permute", "contiguous",
    "size", "dim", "mean", "sum", "chunk", "split", "narrow", "select", "unbind", "expand",
    "expand_as", "view_as", "reshape_as", "unflatten", "t", "float", "double", "half", "to",
    "type_as", "add", "sub", "neg", "clone", "__getitem__"}
_SCALING_METHODS = {"mul", "div", "matmul"}
_ELEMENTWISE_METHODS = {"relu", "sigmoid", "tanh", "clamp", "clip", "exp"}

# positional index and keyword of the `training` flag of functional dropout / batch norm
_TRAINING_ARG = {F.dropout: (2, "training"), F.dropout1d: (2, "training"),
                 F.dropout2d: (2, "training"), F.dropout3d: (2, "training"),
                 F.alpha_dropout: (2, "training"), F.feature_alpha_dropout: (2, "training"),
                 F.batch_norm: (5, "training")}
_DROPOUT_DEFAULT_TRAINING = {F.batch_norm: False}


def _out_of_place(module: nn.Module) -> Callable[[Tensor], Tensor]:
    """The module's function, out of place, without firing its hooks."""
    if getattr(module, "inplace", False):
        module = copy.copy(module)     # shares parameters; the model's module keeps its flag
        module.inplace = False
    return module.forward


def _pool_with_indices(module: nn.Module):
    name = type(module).__name__
    dim = int(name[-2])
    if name.startswith("Adaptive"):
        fn = getattr(F, f"adaptive_max_pool{dim}d")
        return lambda x: fn(x, module.output_size, return_indices=True)
    if getattr(module, "return_indices", False):
        raise UnsupportedLayerError(f"max pooling with return_indices=True ({name})")
    fn = getattr(F, f"max_pool{dim}d")
    return lambda x: fn(x, module.kernel_size, module.stride, module.padding, module.dilation,
                        ceil_mode=module.ceil_mode, return_indices=True)


def _module_kind(module: nn.Module) -> Optional[str]:
    if isinstance(module, _LINEAR_MODULES):
        return "linear"
    if isinstance(module, _BATCHNORM_MODULES):
        return "batchnorm"
    if isinstance(module, _DROPOUT_MODULES):
        return "dropout"
    if isinstance(module, _ELEMENTWISE_MODULES):
        return "elementwise"
    if isinstance(module, _MAXPOOL_MODULES):
        return "maxpool"
    return None


def _check_module_mode(module: nn.Module, kind: str, where: str) -> None:
    if kind == "batchnorm" and (module.training or not module.track_running_stats):
        raise UnsupportedLayerError(
            f"DeepLIFT: {where} ({type(module).__name__}) normalises with batch statistics "
            "(training mode or no running stats), which mixes the images and the reference; "
            "call model.eval()")
    if kind == "dropout" and module.training:
        raise UnsupportedLayerError(f"DeepLIFT: {where} ({type(module).__name__}) is in training "
                                    "mode; call model.eval()")


def _fn_name(target) -> str:
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", repr(target))
    return f"{mod}.{name}" if mod and mod != "builtins" else name


# -- the fx execution plan --------------------------------------------------------------

@dataclass
class _Step:
    node: fx.Node
    kind: str   # placeholder | output | const | linear | gap | fc | elementwise | maxpool_module | maxpool
    target: object = None       # callable / module / method name
    where: str = ""


class _FxPlan:
    """The tail graph, each node classified once."""

    def __init__(self, gm: fx.GraphModule):
        self.gm = gm
        modules = dict(gm.named_modules())
        nodes = list(gm.graph.nodes)
        placeholders = [n for n in nodes if n.op == "placeholder"]
        live = {placeholders[0]}
        self.steps: list[_Step] = []
        self.checked_modules: list[tuple[nn.Module, str, str]] = []
        for node in nodes:
            ins = node.all_input_nodes
            is_live = node in live or any(i in live for i in ins)
            if is_live:
                live.add(node)
            if node.op == "placeholder":
                self.steps.append(_Step(node, "placeholder", placeholders.index(node)))
            elif node.op == "output":
                self.steps.append(_Step(node, "output"))
            elif not is_live:
                self.steps.append(_Step(node, "const"))
            else:
                self.steps.append(self._classify(node, modules, live))
        self.linear_only = not any(s.kind not in ("placeholder", "output", "const", "linear", "fc",
                                                   "gap")
                                   for s in self.steps)

    def _classify(self, node: fx.Node, modules: dict, live: set) -> _Step:
        if node.op == "call_module":
            module = modules[node.target]
            where = f"module {node.target!r}"
            kind = _module_kind(module)
            if kind is None:
                raise UnsupportedLayerError(
                    f"DeepLIFT: fastcam has no rule for {where} ({type(module).__name__}) in the tail; "
                    "supported: linear layers, convolutions, batch norm (eval), pooling, flatten, "
                    "dropout (eval) and elementwise activations")
            if kind in ("batchnorm", "dropout"):
                self.checked_modules.append((module, kind, where))
                kind = "linear"
            if kind == "elementwise":
                return _Step(node, kind, _out_of_place(module), where)
            if kind == "maxpool":
                return _Step(node, "maxpool_module", _pool_with_indices(module), where)
            if isinstance(module, nn.Linear):
                return _Step(node, "fc", module, where)
            if isinstance(module, nn.AdaptiveAvgPool2d) and _is_one(module.output_size):
                return _Step(node, "gap", None, where)
            return _Step(node, "linear", module, where)
        if node.op == "call_function":
            target = node.target
            where = f"{_fn_name(target)} (node {node.name!r})"
            if target in _SCALING_FUNCTIONS:
                self._check_scaling(node, live, where)
                return _Step(node, "linear", target, where)
            if target is F.adaptive_avg_pool2d and len(node.args) == 2 and _is_one(node.args[1]):
                return _Step(node, "gap", None, where)
            if target in _LINEAR_FUNCTIONS:
                self._check_linear_function(node, where)
                return _Step(node, "linear", target, where)
            if target in _ELEMENTWISE_FUNCTIONS:
                self._check_unary(node, live, where)
                return _Step(node, "elementwise", target, where)
            if target in _MAXPOOL_FUNCTIONS:
                self._check_unary(node, live, where)
                return _Step(node, "maxpool", target, where)
            raise UnsupportedLayerError(f"DeepLIFT: fastcam has no rule for {where} in the tail")
        if node.op == "call_method":
            name = str(node.target)
            where = f"Tensor.{name} (node {node.name!r})"
            base = name[:-1] if name.endswith("_") and not name.startswith("_") else name
            if base in _SCALING_METHODS:
                self._check_scaling(node, live, where)
                return _Step(node, "linear", base, where)
            if base in _LINEAR_METHODS:
                return _Step(node, "linear", base, where)
            if base in _ELEMENTWISE_METHODS:
                self._check_unary(node, live, where)
                return _Step(node, "elementwise", base, where)
            raise UnsupportedLayerError(f"DeepLIFT: fastcam has no rule for {where} in the tail")
        raise UnsupportedLayerError(f"DeepLIFT: unexpected graph node {node.op} {node.target}")

    @staticmethod
    def _check_scaling(node: fx.Node, live: set, where: str) -> None:
        args = list(node.args) + list(node.kwargs.values())
        live_operands = [a for a in args if isinstance(a, fx.Node) and a in live]
        if len(live_operands) > 1:
            raise UnsupportedLayerError(
                f"DeepLIFT: {where} multiplies two tensors that both depend on the activation "
                "(a multiplicative interaction, e.g. squeeze-excitation); the Rescale rule does "
                "not cover it")
        div = node.target in (operator.truediv, torch.div, "div", "div_")
        if div and len(node.args) > 1 and isinstance(node.args[1], fx.Node) and node.args[1] in live:
            raise UnsupportedLayerError(f"DeepLIFT: {where} divides by a tensor that depends "
                                        "on the activation")

    @staticmethod
    def _check_unary(node: fx.Node, live: set, where: str) -> None:
        found: list = []
        fx.node.map_arg((node.args[1:], node.kwargs), found.append)
        if any(a in live for a in found):
            raise UnsupportedLayerError(f"DeepLIFT: {where} takes more than one tensor that depends "
                                        "on the activation")

    @staticmethod
    def _check_linear_function(node: fx.Node, where: str) -> None:
        if node.target in (torch.cat, torch.concat, torch.stack):
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
            if dim == 0:
                raise UnsupportedLayerError(f"DeepLIFT: {where} concatenates along the batch dimension")

    def check_modes(self) -> None:
        for module, kind, where in self.checked_modules:
            _check_module_mode(module, kind, where)
        for step in self.steps:
            spec = _TRAINING_ARG.get(step.target) if step.kind == "linear" else None
            if spec is not None:
                i, key = spec
                node = step.node
                training = node.args[i] if len(node.args) > i else node.kwargs.get(
                    key, _DROPOUT_DEFAULT_TRAINING.get(step.target, True))
                if training is True or isinstance(training, fx.Node):
                    raise UnsupportedLayerError(f"DeepLIFT: {step.where} runs in training mode")

    def run(self, X: Tensor, sides: tuple, n: int, eps: float) -> Tensor:
        env: dict = {}
        load = lambda a: fx.node.map_arg(a, env.__getitem__)  # noqa: E731
        gm = self.gm
        for step in self.steps:
            node, kind = step.node, step.kind
            if kind == "placeholder":
                env[node] = X if step.target == 0 else sides[step.target - 1]
                continue
            if kind == "output":
                return load(node.args[0])
            args, kwargs = load(node.args), load(node.kwargs)
            if kind == "const":
                if node.op == "get_attr":
                    value = gm
                    for part in str(node.target).split("."):
                        value = getattr(value, part)
                elif node.op == "call_module":
                    value = gm.get_submodule(node.target)(*args, **kwargs)
                elif node.op == "call_method":
                    value = getattr(args[0], node.target)(*args[1:], **kwargs)
                else:
                    value = node.target(*args, **kwargs)
                env[node] = value
            elif kind == "linear":
                target = step.target
                if isinstance(target, str):
                    env[node] = getattr(args[0], target)(*args[1:], **kwargs)
                else:
                    env[node] = target(*args, **kwargs)
            elif kind == "gap":
                env[node] = _GlobalAvgPool.apply(args[0])
            elif kind == "fc":
                env[node] = _linear(step.target, args[0])
            elif kind == "elementwise":
                env[node] = _Rescale.apply(args[0], self._unary(step, args, kwargs), n, eps)
            elif kind == "maxpool_module":
                env[node] = _MaxPoolRescale.apply(args[0], step.target, n, eps)
            else:  # functional max pooling
                env[node] = _MaxPoolRescale.apply(args[0], self._pool(step, args, kwargs), n, eps)
        raise RuntimeError("the tail graph has no output")

    @staticmethod
    def _unary(step: _Step, args, kwargs) -> Callable[[Tensor], Tensor]:
        target, rest = step.target, args[1:]
        if step.node.op == "call_module":
            return target
        kwargs = {k: v for k, v in kwargs.items() if k != "inplace"}
        if isinstance(target, str):
            return lambda t: getattr(t, target)(*rest, **kwargs)
        if target in (F.relu, F.relu6, F.leaky_relu, F.elu, F.selu, F.celu, F.hardtanh,
                      F.hardswish, F.hardsigmoid, F.threshold, F.silu, F.mish):
            # drop a positional `inplace` flag (the last positional parameter)
            n_pos = {F.relu: 1, F.relu6: 1, F.leaky_relu: 2, F.elu: 2, F.selu: 1, F.celu: 2,
                     F.hardtanh: 3, F.hardswish: 1, F.hardsigmoid: 1, F.threshold: 3,
                     F.silu: 1, F.mish: 1}.get(target, len(rest) + 1)
            rest = rest[:max(n_pos - 1, 0)]
        return lambda t: target(t, *rest, **kwargs)

    @staticmethod
    def _pool(step: _Step, args, kwargs):
        target, rest = step.target, args[1:]
        kwargs = {k: v for k, v in kwargs.items() if k != "return_indices"}
        adaptive = target in (F.adaptive_max_pool1d, F.adaptive_max_pool2d, F.adaptive_max_pool3d)
        rest = rest[:1] if adaptive else rest[:5]    # drop a positional return_indices
        return lambda t: target(t, *rest, **kwargs, return_indices=True)


# -- results ------------------------------------------------------------------------

@dataclass
class DeepLiftResult:
    """DeepLIFT of the target scores w.r.t. the activation (per image)."""

    multipliers: Tensor       # (B, ...) m = ∂ᴰᴸ score / ∂A
    contributions: Tensor     # (B, ...) C = m · (A − reference)
    delta: Tensor             # (B,) score(A) − score(reference)
    summation_error: Tensor   # (B,) |Σ C − delta|


@dataclass
class DeepLiftPass:
    """The forward half of a DeepLIFT run: rows ``[A; R]`` through the tail.

    ``output`` is the tail output for the activations (B, C), connected to
    ``activations`` through the Rescale rules; ``ref_output`` (B, C) the output
    for the reference (detached)."""

    activations: Tensor       # (B, ...) leaf, requires grad
    reference: Tensor         # (1 or B, ...)
    output: Tensor
    ref_output: Tensor
    check: bool = False       # hook mode: verify summation-to-delta
    zero_reference: bool = False

    def attribute(self, scores: Tensor, ref_scores: Tensor, *, check_summation: bool = True,
                  rtol: float = 1e-3) -> DeepLiftResult:
        """The backward: multipliers and contributions of ``scores`` (B,), computed
        from ``output``; ``ref_scores`` (B,) are the same scores of ``ref_output``."""
        with torch.inference_mode(False), torch.enable_grad():
            m, = torch.autograd.grad(scores.sum(), self.activations)
        A = self.activations.detach()
        contributions = m * A if self.zero_reference else m * (A - self.reference)
        delta = (scores - ref_scores).detach()
        total = contributions.flatten(1).sum(1)
        error = (total - delta).abs()
        if self.check and check_summation:
            scale = contributions.flatten(1).abs().sum(1) + delta.abs()
            tol = rtol * scale + 1e-5 * max(1.0, float(delta.abs().max()) if delta.numel() else 1.0)
            if bool((error > tol).any()):
                raise UnsupportedLayerError(
                    "DeepLIFT through a hook-based split: the contributions do not sum to the "
                    f"change of the score (error {float(error.max()):.3g}); the tail has "
                    "nonlinear operations outside nn.Module layers that the hooks cannot see "
                    "(make the model traceable by torch.fx)")
        return DeepLiftResult(m, contributions, delta, error)


# -- the engine ------------------------------------------------------------------------

class DeepLift:
    """DeepLIFT (Rescale rule) through ``tail``, a :class:`fastcam.network.split.Tail`.

    ``eps``: below this |Δx| an elementwise or max-pool rule uses the gradient."""

    def __init__(self, tail: Tail, eps: float = 1e-6):
        if not isinstance(tail, Tail):
            raise TypeError("DeepLift takes the tail returned by fastcam.network.split.split")
        self.tail = tail
        self.eps = float(eps)
        self._plan: Optional[_FxPlan] = None
        self._plan_gm = None

    def plan(self) -> Optional[_FxPlan]:
        """The classified tail graph (fx mode); raises for unsupported layers."""
        gm = self.tail.graph_module
        if gm is None:
            return None
        if self._plan is None or self._plan_gm is not gm:
            self._plan = _FxPlan(gm)
            self._plan_gm = gm
        return self._plan

    def forward(self, activations: Tensor, reference: Optional[Tensor] = None) -> DeepLiftPass:
        """Run rows ``[A; reference]`` through the tail (grad enabled).

        ``reference`` defaults to zeros; it broadcasts over the batch when it has
        one row (run once for all images)."""
        A = activations.detach()
        B = A.shape[0]
        zero_reference = reference is None
        if reference is None:
            reference = A.new_zeros((1, *A.shape[1:]))
        reference = reference.detach().to(dtype=A.dtype, device=A.device)
        if reference.dim() == A.dim() - 1:
            reference = reference[None]
        if reference.shape[1:] != A.shape[1:] or reference.shape[0] not in (1, B):
            raise ValueError(f"reference of shape {tuple(reference.shape)} does not match "
                             f"activations {tuple(A.shape)}")
        plan = self.plan()
        per_image_ref = plan is None or self.tail.n_sides > 0
        R = reference.expand(B, *A.shape[1:]) if per_image_ref else reference
        with torch.inference_mode(False), torch.enable_grad():
            if A.is_inference():
                A = A.clone()
            if R.is_inference():
                R = R.clone()
            A = A.requires_grad_(True)
            if plan is not None and plan.linear_only:
                # no nonlinearity: the multipliers are the gradient, and the
                # reference needs no rows of its own in the backward
                plan.check_modes()
                out = plan.run(A, self.tail.side_values(B), B, self.eps)
                with torch.no_grad():
                    ref_out = plan.run(R, self.tail.side_values(R.shape[0]), R.shape[0], self.eps)
                rows = B
            else:
                X = torch.cat([A, R])
                if plan is not None:
                    plan.check_modes()
                    out = plan.run(X, self.tail.side_values(X.shape[0]), B, self.eps)
                else:
                    out = self._run_hooks(X, B)
                rows = X.shape[0]
            if not isinstance(out, Tensor) or out.dim() < 1 or out.shape[0] != rows:
                raise UnsupportedLayerError(
                    f"DeepLIFT: the tail returned {type(out).__name__} "
                    f"{tuple(out.shape) if isinstance(out, Tensor) else ''} for {rows} "
                    "rows; its operations must keep the images of a batch apart")
            if rows != B:
                out, ref_out = out[:B], out[B:]
            ref_out = ref_out.detach()
            if ref_out.shape[0] != B:
                ref_out = ref_out.expand(B, *ref_out.shape[1:])
            return DeepLiftPass(A, reference, out, ref_out, check=plan is None,
                                zero_reference=zero_reference)

    __call__ = forward

    def _run_hooks(self, X: Tensor, n: int) -> Tensor:
        """Hook-mode tail: rules attached to the leaf modules that run after the layer."""
        active = [False]
        eps = self.eps

        def hook(module, inputs, output):
            if not active[0]:
                return None
            kind = _module_kind(module)
            where = f"module {type(module).__name__}"
            if kind is None:
                if any(True for _ in module.children()):
                    return None
                raise UnsupportedLayerError(f"DeepLIFT: fastcam has no rule for {where} in the tail")
            if kind in ("batchnorm", "dropout"):
                _check_module_mode(module, kind, where)
                return None
            if kind == "linear":
                return None
            x = inputs[0]
            if kind == "elementwise":
                return _Rescale.apply(x, _out_of_place(module), n, eps)
            return _MaxPoolRescale.apply(x, _pool_with_indices(module), n, eps)

        model, layer = self.tail.model, self.tail.layer
        handles = [m.register_forward_hook(hook) for m in model.modules()
                   if m is not layer and m is not model]
        try:
            return self.tail.replaced(X, lambda: active.__setitem__(0, True))
        finally:
            for h in handles:
                h.remove()


def deeplift(tail: Tail, activations: Tensor, target, reference: Optional[Tensor] = None, *,
             eps: float = 1e-6) -> DeepLiftResult:
    """DeepLIFT (Rescale) contributions of ``activations`` (B, ...) to the raw
    output ``target`` (an int or (B,) class indices) of ``tail``, against
    ``reference`` (default zeros)."""
    run = DeepLift(tail, eps).forward(activations, reference)
    B = run.output.shape[0]
    idx = torch.as_tensor(target, device=run.output.device).long().reshape(-1)
    idx = idx.expand(B) if idx.numel() == 1 else idx
    scores = run.output.gather(1, idx[:, None])[:, 0]
    ref_scores = run.ref_output.gather(1, idx[:, None])[:, 0]
    return run.attribute(scores, ref_scores)
