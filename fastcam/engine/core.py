"""The execution engine: how the network runs for the methods and metrics.

The data flow (docs/extending.md, "Layout") is methods → ops → kernels, with the network
run in one place. Three kinds of pass exist, one function each:

- :meth:`Engine.capture`: one forward of the batch with the target layers
  hooked, with autograd to the target layers (gradient methods) or without;
- :meth:`Engine.forward`: a plain forward, optionally differentiable w.r.t.
  its input only (Opti-CAM's loop; :meth:`Engine.frozen` keeps the parameters
  out of autograd);
- :meth:`Engine.stream_scores`: chunks of perturbed inputs, built on the fly,
  scored under inference mode (Score-CAM, the faithfulness metrics, Shap-CAM's
  coalitions through a tail).

How the network runs (the same for every pass, set once per engine):

- ``precision``: ``"fp32"`` (default: the network in its own dtype) or
  ``"bf16"``/``"fp16"``: the network runs under ``torch.autocast`` of the
  input's device with that dtype. Only the network does: its outputs are cast
  back to float32, and the CAM algebra, scores, softmax and optimiser state
  of the methods stay float32. A precision the device cannot run is a
  ``ValueError`` (:func:`check_precision`), never a silent fallback.
- ``inference_graph`` (default True): the passes run on the model's inference
  graph (:mod:`fastcam.engine.graph`): a copy with eval-mode batch norms folded
  into their convolutions, parameters out of autograd and channels-last
  weights, made once per model and shared by every engine on it. A model in
  training mode, with hooks, or without a foldable batch norm runs as given.
  Hooks of a pass (target layers, split points) go on the copy's counterparts,
  which are never folded away.
- ``channels_last`` (default True): a 4-D input of a network that holds a
  ``Conv2d`` is given in channels-last memory format (oneDNN and cuDNN run
  NHWC convolutions faster), and so are the inference graph's weights. The
  user's model (its parameters' memory format, dtype, ``requires_grad``, mode,
  hooks) is never changed.
- A network whose floating-point parameters are bf16/fp16 gets its input in
  that dtype (float32 images work with a half-precision model).
- ``compile`` (default False): :meth:`forward` and :meth:`stream_scores` run
  ``torch.compile`` of the inference graph with inductor freezing, compiled
  once per model and kept with its graph (recompiled by torch per input
  shape); a model that runs as given is compiled once per engine (a shared
  cache would keep the model alive). :meth:`capture` never compiles: it hooks
  layers.
- ``stream_scores``' ``chunk_size`` is an upper bound: the engine picks the
  chunk (≤ the bound) with the best measured throughput, see :meth:`Engine.stream_scores`.

The network is the user's model or a part of it (a :func:`fastcam.network.split`
tail, :meth:`Engine.part`). Not through the engine: the target-layer search's
dry run (:func:`fastcam.network.layers.find_spatial_layer`, in the network's own
fp32, as the user gave it). The split's first-call check runs inside
:meth:`Engine.capture_split`, in the engine's precision. Every pass is marked
(:func:`in_pass`) so that tests can tell a model call outside the engine.
"""
from __future__ import annotations

import contextlib
import contextvars
import time
import weakref
from typing import Callable, Iterator, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ..network.hooks import ActivationCapture, Transform
from ..network.split import Prefix, Tail, split
from .graph import InferenceGraph, graph_for, run_as_given
from .precision import _HALF, Precision, check_precision

#: ``score_fn(outputs, image_index)``: one score per row of a chunk's outputs
#: ``tail_forward(tail, A) -> (output, kept)``: a method's pass of a split's tail
TailForward = Callable[["Tail", Tensor], tuple[Tensor, object]]
ScoreFn = Callable[[Tensor, Tensor], Tensor]

#: measured seconds per input row: network -> {(shape, dtype, device, options): {chunk: seconds}}
_CHUNK_TIMES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()
#: the chunk sizes the calibration tries below the caller's bound (the bound itself too)
_CANDIDATES = (4, 8, 16, 32, 64, 128, 256)


class Engine:
    """Runs ``network`` (an ``nn.Module``) for the methods and metrics; see the module docstring."""

    def __init__(self, network: nn.Module, *, precision: Precision = "fp32",
                 channels_last: bool = True, compile: bool = False, inference_graph: bool = True):
        if not isinstance(network, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(network).__name__}")
        self.network = network
        self.precision = precision
        self.autocast_dtype = check_precision(precision)
        self.channels_last = bool(channels_last)
        self.compile = bool(compile)
        self.inference_graph = bool(inference_graph)
        self._has_conv: Optional[bool] = None
        self._whole = network          # whose parameters' dtype and layers decide `prepare`
        self._compiled_eager: Optional[nn.Module] = None

    def part(self, network: nn.Module) -> "Engine":
        """An engine for a part of the network (a split's prefix or tail, which may not
        register the model's modules) with these options; its input is prepared as the
        whole network's is."""
        e = Engine(network, precision=self.precision, channels_last=self.channels_last,
                   compile=self.compile, inference_graph=False)
        e._whole = self._whole
        return e

    def __repr__(self) -> str:
        return (f"Engine({type(self.network).__name__}, precision={self.precision!r}, "
                f"channels_last={self.channels_last}, compile={self.compile}, "
                f"inference_graph={self.inference_graph})")

    # -- how one pass runs -----------------------------------------------------
    def prepare(self, x: Tensor) -> Tensor:
        """The input as the network gets it: in a half-precision network's dtype,
        channels-last for a convolutional network (differentiable w.r.t. ``x``)."""
        dtype = self._param_dtype()
        if dtype in _HALF and x.is_floating_point() and x.dtype != dtype:
            x = x.to(dtype)
        if self.channels_last and x.dim() == 4 and self._convolutional():
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @contextlib.contextmanager
    def running(self, device: torch.device) -> Iterator[None]:
        """The scope of one pass on ``device``: the precision (autocast for bf16/fp16;
        checks that the device runs it) and the mark :func:`in_pass` reads."""
        token = _IN_PASS.set(True)
        try:
            if self.autocast_dtype is None:
                yield
                return
            check_precision(self.precision, device)
            with torch.autocast(torch.device(device).type, dtype=self.autocast_dtype):
                yield
        finally:
            _IN_PASS.reset(token)

    def graph(self, observed: Sequence[nn.Module] = ()) -> Optional[InferenceGraph]:
        """The inference graph this engine's next pass runs on (:mod:`fastcam.engine.graph`),
        or None: the network runs as given (a part of a network, ``inference_graph=False``,
        or a model :func:`~fastcam.engine.graph.graph_status` explains). ``observed``: the
        layers the pass hooks or splits at."""
        if not self.inference_graph or self.network is not self._whole:
            return None
        if self.autocast_dtype is not None:          # see fastcam.network.fold: half precision
            run_as_given(self.network, f"precision={self.precision!r} does not fold batch norm")
            return None
        return graph_for(self.network, channels_last=self.channels_last and self._convolutional(),
                         observed=observed, compile=self.compile)

    def _net(self, graph: Optional[InferenceGraph], compiled: bool) -> nn.Module:
        if graph is not None:
            return graph.compiled(self.precision) if compiled and self.compile else graph.module
        if compiled and self.compile:
            if self._compiled_eager is None:      # per engine: a cached one would keep the model alive
                self._compiled_eager = torch.compile(self.network)
            return self._compiled_eager
        return self.network

    def _run(self, x: Tensor, *, net: Optional[nn.Module] = None) -> Tensor:
        net = self.network if net is None else net
        with self.running(x.device):
            out = net(self.prepare(x))
        if not isinstance(out, Tensor):
            raise ValueError(f"the model returned {type(out).__name__}; fastcam needs "
                             "a tensor of logits (B, C)")
        return out.float() if out.dtype in _HALF else out

    def _param_dtype(self) -> Optional[torch.dtype]:
        for p in self._whole.parameters():
            if p.is_floating_point():
                return p.dtype
        return None

    def _convolutional(self) -> bool:
        if self._has_conv is None:
            self._has_conv = any(isinstance(m, nn.Conv2d) for m in self._whole.modules())
        return self._has_conv

    # -- the three passes --------------------------------------------------------
    def capture(self, x: Tensor, layers: Sequence[nn.Module], *, grad: bool,
                transform: Optional[Transform] = None, keep_raw: bool = False):
        """(activations per layer (B,K,h,w), output) of one forward of ``x``.

        ``grad=True``: autograd from the output back to the activations (the
        backward stops there); else no autograd at all (``torch.no_grad``, so the
        tensors may still enter autograd later, unlike inference-mode tensors).
        ``transform``: a layer's raw output → (B,K,h,w) (see
        :class:`~fastcam.network.hooks.ActivationCapture`). Activations come in
        the precision the network ran in; the output is float32 for bf16/fp16.
        ``keep_raw`` (with a ``transform``): also each layer's raw output, detached,
        as a third element (Ablation-CAM ablates a ViT's tokens)."""
        mode = torch.enable_grad() if grad else torch.no_grad()
        graph = self.graph(layers)
        hooked = [graph.layer(m) for m in layers] if graph is not None else layers
        with mode, ActivationCapture(hooked, track_grad=grad, transform=transform,
                                     keep_raw=keep_raw) as hooks:
            out = self._run(x, net=self._net(graph, compiled=False))
        if keep_raw:
            return hooks.collected(), out, list(hooks.raw_outputs)
        return hooks.collected(), out

    def capture_split(self, x: Tensor, layers: Sequence[nn.Module],
                      tail_forward: Optional[TailForward] = None
                      ) -> tuple[list[Tensor], list[Tensor], list[tuple[Prefix, Tail]], list]:
        """The split capture: for each layer, the network split there
        (:func:`fastcam.network.split.split`), its prefix on ``x`` without autograd
        (the activation A, (B,K,h,w)) and ``tail_forward(tail, A)`` (default: the
        tail under ``torch.no_grad``), which returns the output and what the caller
        keeps of the pass (LIFT-CAM's DeepLIFT forward). Returns (activations,
        outputs, (prefix, tail) per layer, kept passes); every pass runs in this
        engine's precision and memory format."""
        tail_forward = tail_forward or _plain_tail
        prepared = self.prepare(x)
        graph = self.graph(layers)
        activations, outputs, splits, runs = [], [], [], []
        for layer in layers:
            if graph is None:
                prefix, tail = split(self.network, layer)
            else:
                prefix, tail = split(graph.module, graph.layer(layer))
            with torch.no_grad(), self.running(x.device):
                A = prefix(prepared)
            if not isinstance(A, Tensor) or A.dim() != 4:
                shape = tuple(A.shape) if isinstance(A, Tensor) else type(A).__name__
                raise ValueError(f"target layer {type(layer).__name__} has no spatial output: "
                                 f"its output has shape {shape}, expected (B,K,h,w)")
            with self.running(x.device):
                out, run = tail_forward(tail, A)
            activations.append(A)
            outputs.append(out)
            splits.append((prefix, tail))
            runs.append(run)
        return activations, outputs, splits, runs

    def run_prefix(self, prefix: Prefix, x: Tensor) -> Tensor:
        """A split's prefix on ``x`` under inference mode, in this engine's precision and
        memory format: the activation, and for a tail with side inputs (or a hooks-mode
        split) the values its next tail call reuses (Shap-CAM's and Ablation-CAM's
        per-image tails)."""
        with torch.inference_mode(), self.running(x.device):
            return prefix(self.prepare(x))

    def forward(self, x: Tensor, *, grad: bool = False) -> Tensor:
        """The output on ``x``; with ``grad`` differentiable (w.r.t. the input,
        and the parameters unless inside :meth:`frozen`)."""
        with torch.enable_grad() if grad else torch.no_grad():
            return self._run(x, net=self._net(self.graph(), compiled=True))

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Parameters excluded from autograd for the duration (restored on exit,
        also on error): a backward to the input then computes no parameter gradient
        (the inference graph's parameters never require grad; this covers a model
        that runs as given)."""
        params = [p for p in self.network.parameters() if p.requires_grad]
        for p in params:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in params:
                p.requires_grad_(True)

    @contextlib.contextmanager
    def preserved_buffers(self) -> Iterator[None]:
        """The network's buffers (batch-norm running statistics) restored on exit,
        also on error: passes of a network in training mode leave no trace in it."""
        if not any(m.training for m in self.network.modules()):
            yield          # in eval mode no built-in layer writes its buffers
            return
        saved = [(b, b.detach().clone()) for b in self.network.buffers()]
        try:
            yield
        finally:
            with torch.no_grad():
                for b, value in saved:
                    b.copy_(value)

    def stream_scores(self, n: int, build: Callable[[int, int], Tensor], image: Tensor,
                      score_fn: ScoreFn, chunk_size: int) -> Tensor:
        """Scores (n,) of the network on the copies ``build(start, stop)`` (one
        chunk of inputs at a time), under inference mode; ``image[j]`` is the
        image copy j belongs to, passed to ``score_fn`` (with float32 outputs).

        ``chunk_size`` bounds the copies in memory at once. Within it the engine
        uses the chunk with the lowest measured time per copy: when a call has
        copies enough (twice the candidates' total), its first chunks try the
        sizes 4, 8, 16, … below the bound and the bound (each twice, the second
        run timed, all of them real work), and the times are kept per network,
        input shape, dtype, device and engine options for later calls. Rows are
        independent, so the chunking changes the scores only by the rounding of
        the network's batched kernels."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        out: Optional[Tensor] = None
        graph = self.graph()
        net = self._net(graph, compiled=True)
        with torch.inference_mode():
            start = 0
            for size, timed in self._chunk_plan(n, build, chunk_size, graph is not None):
                stop = min(n, start + size)
                if timed is not None:
                    _sync(image.device)
                    t0 = time.perf_counter()
                s = score_fn(self._run(build(start, stop), net=net), image[start:stop])
                if timed is not None:
                    _sync(image.device)
                    timed[size] = (time.perf_counter() - t0) / (stop - start)
                if out is None:
                    out = torch.empty(n, dtype=s.dtype, device=s.device)
                out[start:stop] = s
                start = stop
                if start >= n:
                    break
        return out if out is not None else torch.empty(0, device=image.device)

    def _chunk_plan(self, n: int, build: Callable[[int, int], Tensor], bound: int,
                    on_graph: bool) -> Iterator[tuple[int, Optional[dict]]]:
        """(chunk size, the dict to record its time in or None) until n is covered."""
        candidates = [c for c in _CANDIDATES if c < bound] + [bound]
        if n == 0:
            return
        if len(candidates) == 1:
            yield from _repeat(bound)
            return
        sample = build(0, 1)
        key = (tuple(sample.shape[1:]), sample.dtype, str(sample.device), self.precision,
               self.channels_last, self.compile, on_graph)
        times = _CHUNK_TIMES.setdefault(self.network, {}).setdefault(key, {})
        missing = [c for c in candidates if c not in times]
        if missing and n >= 2 * sum(missing):
            for c in missing:
                yield c, None          # the first run of a shape pays its setup
                yield c, times
        measured = [c for c in candidates if c in times]
        best = min(measured, key=times.__getitem__) if measured else bound
        yield from _repeat(best)


_IN_PASS: contextvars.ContextVar[bool] = contextvars.ContextVar("fastcam_engine_pass", default=False)


def in_pass() -> bool:
    """Whether the caller runs inside one of an engine's passes (``Engine.running``):
    every call of the user's model should (tests hook the model's modules to check)."""
    return _IN_PASS.get()


def _plain_tail(tail: Tail, A: Tensor) -> tuple[Tensor, None]:
    with torch.no_grad():
        return tail(A), None


def _repeat(size: int) -> Iterator[tuple[int, None]]:
    while True:
        yield size, None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def engine_for(model: Union[nn.Module, Engine], precision: Optional[Precision] = None) -> Engine:
    """``model``'s engine: the Engine itself, or a new one around an ``nn.Module``
    (in ``precision``, default fp32). An Engine of another precision than the one
    asked is a ``ValueError``."""
    if isinstance(model, Engine):
        if precision is not None and precision != model.precision:
            raise ValueError(f"precision={precision!r} asked for an Engine that runs "
                             f"{model.precision!r}")
        return model
    return Engine(model, precision=precision or "fp32")
