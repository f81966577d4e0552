"""The explainer base class and the method contract.

A method says how to weight the channels of the target layer's activation
(:meth:`BaseCAM.channel_weights`) or how to make its maps another way
(:meth:`BaseCAM.maps`), from one per-call :class:`CallContext`. The base class
owns the input checks, normalisation, layer lookup, the capture pass of the
model (through :class:`fastcam.engine.Engine`), target resolution and the
last-call record; everything stays on the input's device.
"""
from __future__ import annotations

import contextlib
import inspect
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, ContextManager, Iterator, Literal, Optional, TypedDict, Unpack, get_origin

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..engine import Engine, Precision
from .. import progress as _progress
from ..inputs import (NormalizeSpec, all_finite, as_images, at_least_fp32, check_finite, model_dtype,
                      normalizer, resolve_normalize)
from ..network.hooks import Transform
from ..network.layers import (UNSET, LayerSpec, find_target_layer, layer_name, merge_layer_alias,
                              resolve_layers)
from ..network.split import Prefix, Tail
from ..ops import cam_combine
from ..targets import TargetSpec, Targets, resolve_targets


Capture = Literal["gradient", "forward", "split"]


class CommonOptions(TypedDict, total=False):
    """The keyword options every method takes (see :class:`BaseCAM`), for a
    constructor's ``**options: Unpack[CommonOptions]``. Their defaults are
    :class:`BaseCAM`'s keyword-only parameters, the one place they are declared."""

    normalize: NormalizeSpec
    precision: Precision
    compile: bool
    reshape_transform: Optional[Transform]
    progress: Optional[bool]


@dataclass
class CAMRecord:
    """What the last call computed, for research use (all detached, on x's device)."""

    logits: Tensor                      # (B, C) model output on the (normalised) input
    targets: Optional[Tensor]           # (B,) class indices, None for callable targets
    scores: Tensor                      # (B,) the explained target scores
    activations: list[Tensor] = field(default_factory=list)   # per layer (B, K, h, w)
    weights: list[Tensor] = field(default_factory=list)       # per layer (B, K)
    low_res: list[Tensor] = field(default_factory=list)       # per layer (B, h, w) ReLU(Σ w A)
    extra: dict = field(default_factory=dict)                 # method-specific values


@dataclass
class CallContext:
    """One call of a method: what the capture pass computed, and what the method
    adds on its way to the maps. The base class fills the first block; a method
    reads it in :meth:`BaseCAM.channel_weights` or :meth:`BaseCAM.maps` and sets
    ``weights``, ``low_res`` and ``extra`` (the last-call record is made from it)."""

    x: Optional[Tensor]                 # the input as given (B, C, H, W); None for a
                                        # recorded pass (:meth:`recorded`)
    x_model: Optional[Tensor]           # what the model sees (normalised when asked)
    layers: list[nn.Module]
    activations: list[Tensor]           # per layer (B, K, h, w); attached to autograd
                                        # (capture "gradient") or not
    logits: Optional[Tensor]            # (B, C); None only in a recorded context without them
    targets: Targets
    scores: Optional[Tensor]            # (B,) the explained target scores (idem)
    splits: list[tuple[Prefix, Tail]] = field(default_factory=list)   # capture "split", per layer
    tail_runs: list[Any] = field(default_factory=list)   # capture "split": what tail_forward kept
    raw_outputs: list[Tensor] = field(default_factory=list)  # keeps_raw_outputs and a
                                        # reshape_transform: each layer's output before it
    captured: Any = None                # what the method's capture_scope yielded
    weights: list[Tensor] = field(default_factory=list)   # per layer (B, K)
    terms: list[Tensor] = field(default_factory=list)     # per layer (B, K, h, w): element-wise methods
    low_res: list[Tensor] = field(default_factory=list)   # per layer (B, h, w)
    extra: dict = field(default_factory=dict)
    started: float = 0.0                # time.perf_counter() when the call began
    recorded_gradients: Optional[list[Tensor]] = field(default=None, repr=False)

    @classmethod
    def recorded(cls, layers: list[nn.Module], activations: list[Tensor], targets: Targets, *,
                 gradients: Optional[list[Tensor]] = None, x: Optional[Tensor] = None,
                 logits: Optional[Tensor] = None, scores: Optional[Tensor] = None) -> "CallContext":
        """The context of a forward (and backward) someone else ran: a front-end that
        hooks the user's own forward, as TorchCAM does, hands over the recorded
        activations, their gradients ∂score/∂A where it computed them, and the
        recorded input ``x`` (the model's input) where a method reruns the model on
        copies of it. What was not recorded stays None; only a method's weight
        function (:meth:`BaseCAM.channel_weights` / :meth:`BaseCAM.weighted_activations`)
        runs on such a context, and reading a missing value fails there."""
        if gradients is not None and len(gradients) != len(activations):
            raise ValueError(f"{len(gradients)} gradients for {len(activations)} activations")
        return cls(x, x, list(layers), list(activations), logits, targets, scores,
                   recorded_gradients=None if gradients is None else list(gradients))

    @property
    def size(self) -> tuple[int, int]:
        """The maps' size: the input's (H, W)."""
        if self.x is None:
            raise ValueError("a recorded context has no input, so no map size")
        return tuple(self.x.shape[-2:])

    @property
    def gradients(self) -> list[Tensor]:
        """Per layer ``∂ score_b / ∂ A_b`` (B, K, h, w): computed once, on first use,
        in one backward pass from :attr:`scores` that stops at the target layers
        (capture "gradient"), or the gradients a front-end recorded. The backward
        frees the autograd graph: a method that also needs another score's gradients
        asks :meth:`gradients_of` first."""
        if self.recorded_gradients is None:
            if self.scores is None:
                raise ValueError("this recorded context has neither gradients nor scores")
            self.recorded_gradients = self.gradients_of(self.scores, keep_graph=False)
        return self.recorded_gradients

    def gradients_of(self, scores: Tensor, *, keep_graph: bool = True) -> list[Tensor]:
        """Per layer ``∂ scores_b / ∂ A_b`` of any (B,) scores computed from this call's
        logits (capture "gradient"): a method that contrasts two scores of one forward
        (ADVISE's target and runner-up classes). The graph is kept for
        :attr:`gradients` and further scores unless ``keep_graph=False``."""
        if not all(A.requires_grad for A in self.activations):
            raise ValueError("this call's activations carry no autograd graph: the method's "
                             "capture must be 'gradient' to differentiate a score")
        return gradients(scores, self.activations, retain_graph=keep_graph)

    def record(self) -> CAMRecord:
        """The last-call record, detached."""
        return CAMRecord(logits=self.logits.detach(), targets=self.targets.indices,
                         scores=self.scores.detach(),
                         activations=[A.detach() for A in self.activations],
                         weights=[w.detach() for w in self.weights],
                         low_res=[m.detach() for m in self.low_res], extra=self.extra)


def minmax(maps: Tensor) -> Tensor:
    """Per-map min-max scaling over the last two dims; constant maps become 0."""
    lo = maps.amin(dim=(-2, -1), keepdim=True)
    rng = maps.amax(dim=(-2, -1), keepdim=True) - lo
    return torch.where(rng > 0, (maps - lo) / torch.where(rng > 0, rng, 1), 0)


def minmax_eps(maps: Tensor, eps: float, spatial_dims: int = 2) -> Tensor:
    """``(m − min) / (max − min + eps)`` per map over the last ``spatial_dims`` dims:
    min-max scaling with ``eps`` in the denominator (a constant map becomes 0),
    as TorchCAM's ``_normalize`` (eps 1e-8) and pytorch-grad-cam's
    ``scale_cam_image`` (eps 1e-7) compute it."""
    dims = tuple(range(-spatial_dims, 0))
    shifted = maps - maps.amin(dim=dims, keepdim=True)
    return shifted / (shifted.amax(dim=dims, keepdim=True) + eps)


def channel_sum(A: Tensor, w: Tensor) -> Tensor:
    """``Σ_k w_k A_k``: (B, K, h, w) activations weighted by (B, K) channel
    weights, (B, h, w); the weights are cast to A's dtype."""
    return torch.einsum("bk,bkhw->bhw", w.to(A.dtype), A)


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, h, w) -> (B, H, W), bilinear, align_corners=False (maps already at
    ``size`` are returned as they are)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


class BaseCAM:
    """Base of every CAM explainer: the one contract of a method.

    A call runs the same steps for every method: input checks, normalisation,
    target-layer lookup, the capture pass through the :class:`~fastcam.engine.Engine`
    (the kind in :attr:`capture`), target resolution, then the method's
    :meth:`maps` (by default :meth:`channel_weights` combined by the fused
    :func:`fastcam.ops.cam_combine`), then the last-call record. A method
    defines exactly one of :meth:`channel_weights` (maps ``Σ_k w_k A_k``),
    :meth:`weighted_activations` (element-wise methods: maps ``Σ_k T_k`` of
    per-position terms such as ``ReLU(∂y/∂A) ⊙ A``) or :meth:`maps`, each of one
    :class:`CallContext`; any other model pass it needs goes through
    ``self.engine``.

    Args:
        model: any ``nn.Module`` classifier returning logits (B, C). Its mode is
            left as it is (call ``.eval()`` first: batch-norm in training mode
            mixes the images of a batch); a model in training mode gets a warning.
        target_layers: modules or dotted names (``"layer4"``, ``"features.29"``);
            None -> found by a dry run on the first batch
            (:func:`fastcam.network.layers.find_target_layer`): the last module
            with a spatial 4-D output for a CNN; for torchvision's (and timm's)
            ViT the last encoder block's first norm and for Swin the last block's
            ``norm1``, each with its ``reshape_transform``; never a patch
            embedding. With several layers the maps are averaged and rescaled
            (pytorch-grad-cam's convention). ``target_layer=`` (TorchCAM's name)
            is a deprecated alias that warns.
        normalize: None (the model sees the tensor given), ``(mean, std)`` (the
            input is pixel-space in [0, 1] and the model sees ``(x − mean)/std``),
            or a preset: ``"imagenet"`` (the model's own ``normalization`` if it
            declares one, else the ImageNet mean/std), ``"model"``, ``"auto"``,
            ``"none"`` or the text ``"MEAN/STD"``
            (:func:`fastcam.inputs.resolve_normalize`).
        precision: ``"fp32"`` (default) or ``"bf16"``/``"fp16"``: every pass of
            the model runs under autocast in that dtype; the method's algebra
            stays float32 (see :mod:`fastcam.engine`). A precision the input's
            device cannot run is a ``ValueError``.
        compile: run the model's plain forwards (the masked batches of Score-CAM,
            Opti-CAM's loop, the metrics' passes) through ``torch.compile``.
        reshape_transform: a function applied to each target layer's raw output
            to give the (B,K,h,w) activation, e.g. a ViT's tokens (B, 1 + h·w, D)
            into a grid (B, D, h, w) (pytorch-grad-cam's argument of that name; the
            gradient is ``reshape_transform(∂s/∂output)``, as there; see
            :mod:`fastcam.network.tokens`). Also an attribute. Methods that split
            the model at the layer (LIFT-CAM, Shap-CAM) refuse it (``ValueError``).
        progress: a tqdm bar on stderr for calls that run many passes per image
            (Score-CAM's masked copies, SS-/IS-CAM's noise samples, Opti-CAM's
            iterations, Shap-CAM's coalitions, ...): True, False, or None (on
            when stderr is a terminal). The maps do not depend on it.

    Use as ``cam(x, targets)`` or in a ``with`` block; hooks live only during a
    call and are removed on return and on error; errors are never swallowed.

    A call ``cam(x, targets)`` takes:

    * ``x``: a batch (B, C, H, W) on the model's device. A float32 (float64)
      model gets a floating batch cast to float32 (float64): float64 and half
      precision are taken; a half-precision model takes float32 or its own
      dtype; ``uint8`` is read as pixel values 0–255 and divided by 255
      (pixel-space [0, 1], what ``normalize`` expects); other integer or bool
      dtypes are a ``TypeError``.
    * ``targets``: see :meth:`__call__`.
    """

    #: the capture pass: "gradient" (hooked forward, autograd from the scores to
    #: the activations), "forward" (hooked forward, no autograd) or "split" (the
    #: model split at each target layer: prefix under no autograd, then
    #: :meth:`tail_forward`)
    capture: ClassVar[Capture] = "gradient"
    #: the capture pass when a ``reshape_transform`` is set, if not :attr:`capture`
    #: (Ablation-CAM splits a CNN at the layer, but ablates a ViT's tokens in full passes)
    capture_with_transform: ClassVar[Optional[Capture]] = None
    #: with a ``reshape_transform``: keep each layer's output before it in
    #: ``ctx.raw_outputs`` (a copy per call; Ablation-CAM ablates the raw tokens)
    keeps_raw_outputs: ClassVar[bool] = False
    #: capture "gradient": the input the model sees (``ctx.x_model``) is a leaf
    #: that requires grad, so a method can differentiate w.r.t. it (FullGrad)
    input_gradient: ClassVar[bool] = False

    def __init__(self, model: nn.Module, target_layers: LayerSpec = None, *,
                 normalize: NormalizeSpec = None, precision: Precision = "fp32",
                 compile: bool = False, reshape_transform: Optional[Transform] = None,
                 progress: Optional[bool] = None, target_layer: LayerSpec = UNSET):
        target_layers = merge_layer_alias(target_layers, target_layer, type(self).__name__)
        self.engine = Engine(model, precision=precision, compile=compile)
        self.model = model
        self.normalize = resolve_normalize(normalize, model)
        self.target_layers = resolve_layers(model, target_layers)
        self.reshape_transform = reshape_transform
        self.progress = _progress.check_progress(progress)
        self.last: Optional[CAMRecord] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__.__signature__ = _signature_with_common_options(cls.__init__)

    def __enter__(self) -> "BaseCAM":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False

    # -- what a method defines -------------------------------------------------
    def channel_weights(self, ctx: CallContext) -> list[Tensor]:
        """Per-layer channel weights (B, K) of the call (used by the default :meth:`maps`)."""
        raise NotImplementedError(f"{type(self).__name__} defines neither channel_weights nor maps")

    def weighted_activations(self, ctx: CallContext) -> list[Tensor]:
        """Per-layer terms T (B, K, h, w) whose channel sum is the map before ReLU
        (used by the default :meth:`maps` when a method defines this instead of
        :meth:`channel_weights`)."""
        raise NotImplementedError(f"{type(self).__name__} defines no weighted_activations")

    @classmethod
    def elementwise(cls) -> bool:
        """Whether the method's maps are ``Σ_k T_k`` of :meth:`weighted_activations`."""
        return cls.weighted_activations is not BaseCAM.weighted_activations

    def maps(self, ctx: CallContext) -> Tensor:
        """The call's maps (B, H, W) in [0, 1]. Default: ``minmax(up(ReLU(Σ_k w_k A_k)))``
        per layer with w = :meth:`channel_weights` (or ``minmax(up(ReLU(Σ_k T_k)))``
        with T = :meth:`weighted_activations`), several layers averaged and
        rescaled; sets ``ctx.weights`` (or ``ctx.terms``) and ``ctx.low_res``. The
        algebra runs in float32 for a half-precision model."""
        if self.elementwise():
            return self._elementwise_maps(ctx)
        ctx.weights = [at_least_fp32(w.detach()) for w in self.channel_weights(ctx)]
        for w in ctx.weights:
            check_finite(w, f"{type(self).__name__}'s channel weights")
        with torch.no_grad():
            activations = [at_least_fp32(A.detach()) for A in ctx.activations]
            maps = [self.combine(A, w, ctx.size)
                    for A, w in zip(activations, ctx.weights, strict=True)]
            ctx.low_res = [torch.relu(channel_sum(A, w)) for A, w in zip(activations, ctx.weights)]
            return maps[0] if len(maps) == 1 else minmax(torch.stack(maps).mean(0))

    def _elementwise_maps(self, ctx: CallContext) -> Tensor:
        ctx.terms = [at_least_fp32(T.detach()) for T in self.weighted_activations(ctx)]
        for T in ctx.terms:
            check_finite(T, f"{type(self).__name__}'s weighted activations")
        with torch.no_grad():
            sums = [T.sum(dim=1, keepdim=True) for T in ctx.terms]
            ones = [torch.ones(T.shape[0], 1, dtype=T.dtype, device=T.device) for T in sums]
            maps = [self.combine(T, w, ctx.size) for T, w in zip(sums, ones)]
            ctx.low_res = [torch.relu(T[:, 0]) for T in sums]
            return maps[0] if len(maps) == 1 else minmax(torch.stack(maps).mean(0))

    @classmethod
    def maps_from_low_res(cls, low_res: Tensor, size: tuple[int, int], options: Optional[dict] = None) -> Tensor:
        """A one-layer call's maps (B, H, W) from its ``last.low_res`` (B, h, w) and
        the method's keyword ``options``: ``minmax(upsample(low_res))``, what
        :meth:`combine` does after ``ReLU(Σ_k w_k A_k)`` (``fastcam eval --maps``
        reads stored low-res maps back with it)."""
        return minmax(upsample(low_res, size))

    def combine(self, A: Tensor, w: Tensor, size: tuple[int, int]) -> Tensor:
        """One layer's map at ``size``: ``minmax(up(ReLU(Σ_k w_k A_k)))`` (the fused op)."""
        return cam_combine(A, w.to(A.dtype), size)

    def tail_forward(self, tail: Tail, A: Tensor) -> tuple[Tensor, Any]:
        """Capture "split": the tail's output on A (no autograd) and what the
        method keeps of the pass (``ctx.tail_runs``)."""
        with torch.no_grad():
            return tail(A), None

    @property
    def reshape_transform(self) -> Optional[Transform]:
        """A target layer's raw output -> (B, K, h, w) (a ViT's tokens into a grid), or None."""
        return self._reshape_transform

    @reshape_transform.setter
    def reshape_transform(self, transform: Optional[Transform]) -> None:
        if transform is not None and not callable(transform):
            raise TypeError(f"reshape_transform must be callable, got {type(transform).__name__}")
        self._reshape_transform = transform

    def capture_scope(self, layers: list[nn.Module]) -> ContextManager[Any]:
        """Extra hooks the method needs on the capture pass itself, entered around it;
        what the context manager yields is ``ctx.captured``. Default: none. LeGrad
        records each block's attention and logits in the one forward of the call."""
        return contextlib.nullcontext()

    def capture_kind(self) -> Capture:
        """This call's capture pass: :attr:`capture`, or :attr:`capture_with_transform`
        when a ``reshape_transform`` is set and the method declares one."""
        if self.reshape_transform is not None and self.capture_with_transform is not None:
            return self.capture_with_transform
        return self.capture

    def target_scores(self, ctx: CallContext) -> Tensor:
        """The (B,) scores the call explains, from ``ctx.logits`` and ``ctx.targets``
        (attached to autograd under capture "gradient", so :attr:`CallContext.gradients`
        differentiates them). Default: the targets' scores (the logit of a class
        index, or a callable's value); a method explaining another score (Finer-CAM's
        contrastive score) overrides this, never ``ctx.scores`` afterwards."""
        return ctx.targets.scores(ctx.logits)

    # -- the shared pipeline -----------------------------------------------------
    def _layers_for(self, x_model: Tensor) -> list[nn.Module]:
        if self.target_layers is None:
            layer, transform = find_target_layer(self.model, x_model)
            self.target_layers = [layer]
            if self.reshape_transform is None:
                self.reshape_transform = transform
        return self.target_layers

    def context(self, x: Tensor, targets: TargetSpec = None) -> CallContext:
        """The capture pass of one call: checks, normalisation, layer lookup, the
        model pass (:attr:`capture`), the resolved targets and their scores.
        Activations, logits and scores must be finite and the activations must
        have more than one spatial position."""
        started = time.perf_counter()
        x = as_images(x, model_dtype(self.model))
        if self.model.training:
            warnings.warn("the model is in training mode; call model.eval() for "
                          "per-image explanations", stacklevel=3)
        x_model = normalizer(self.normalize, x)(x)
        layers = self._layers_for(x_model)     # may set the reshape_transform (a ViT)
        capture = self.capture_kind()
        if capture == "split" and self.reshape_transform is not None:
            raise ValueError(f"{type(self).__name__} splits the model at the target layer and "
                             "cannot take a reshape_transform (a token model's layer)")
        if self.input_gradient and capture == "gradient":
            x_model = x_model.detach().requires_grad_(True)
        splits, tail_runs, raw = [], [], []
        with torch.enable_grad() if capture == "gradient" else torch.no_grad(), \
                self.capture_scope(list(layers)) as captured:
            if capture == "split":
                activations, outputs, splits, tail_runs = self.engine.capture_split(
                    x_model, layers, self.tail_forward)
                logits = outputs[0]
            elif self.keeps_raw_outputs and self.reshape_transform is not None:
                activations, logits, raw = self.engine.capture(
                    x_model, layers, grad=capture == "gradient",
                    transform=self.reshape_transform, keep_raw=True)
            else:
                activations, logits = self.engine.capture(
                    x_model, layers, grad=capture == "gradient",
                    transform=self.reshape_transform)
            for layer, A in zip(layers, activations):
                _check_activation(self.model, layer, A)
            logits = at_least_fp32(logits)
            check_finite(logits, "the model's output (logits)")
            resolved = resolve_targets(targets, logits)
            ctx = CallContext(x, x_model, list(layers), activations, logits, resolved,
                              None, splits=splits, tail_runs=tail_runs,
                              raw_outputs=raw, captured=captured, started=started)
            ctx.scores = self.target_scores(ctx)
            check_finite(ctx.scores, "the target scores")
        return ctx

    @contextlib.contextmanager
    def _call_scope(self) -> Iterator[None]:
        """Every call runs outside the caller's inference mode (gradient methods
        need autograd; an inference-mode input is copied first, see :meth:`_usable`)
        and leaves the model's buffers as they were (a model in training mode
        would otherwise update its batch-norm statistics)."""
        with torch.inference_mode(False), self.engine.preserved_buffers(), \
                _progress.scope(self.progress, type(self).__name__):
            yield

    @staticmethod
    def _usable(x: Tensor) -> Tensor:
        return x.clone() if isinstance(x, Tensor) and x.is_inference() else x

    def compute_weights(self, x: Tensor, targets: TargetSpec = None) -> CallContext:
        """The capture pass and the channel weights of every target layer
        (``ctx.weights``), or for an element-wise method its weighted activations
        (``ctx.terms``): what the default :meth:`maps` combines; front-ends
        combine them their way."""
        with self._call_scope():
            ctx = self.context(self._usable(x), targets)
            if self.elementwise():
                ctx.terms = [T.detach() for T in self.weighted_activations(ctx)]
            else:
                ctx.weights = self.channel_weights(ctx)
        return ctx

    def __call__(self, x: Tensor, targets: TargetSpec = None) -> Tensor:
        """Maps (B, H, W), float32 in [0, 1], on x's device, at x's resolution.

        Args:
            x: a batch (B, C, H, W) on the model's device: pixel-space in [0, 1]
                when the explainer has a ``normalize``, else what the model takes.
                A floating batch is cast to a float32 (float64) model's dtype
                (float64 and half precision are taken); a half-precision model
                takes float32 or its own dtype (others become float32); ``uint8``
                is read as pixels 0–255 and divided by 255; other integer and bool
                dtypes are a ``TypeError``.
            targets: which class score each image is explained for
                (:mod:`fastcam.targets`): None (each image's predicted class); an
                int (one class for every image); B class indices (a sequence, or a
                1-D integer tensor or array); or B callables ``f(output_row) ->
                scalar`` (pytorch-grad-cam's ``ClassifierOutputTarget`` objects are
                such callables). A count other than B is a ``ValueError``, never
                silently truncated.
        """
        with self._call_scope():
            ctx = self.context(self._usable(x), targets)
            out = self.maps(ctx)
            check_finite(out, f"{type(self).__name__}'s maps")
        self.last = ctx.record()
        return out.float()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(target_layers={self.target_layers}, normalize={self.normalize}, "
                f"precision={self.engine.precision!r})")


def common_options() -> list[inspect.Parameter]:
    """:class:`BaseCAM`'s keyword-only parameters: the options every method takes."""
    params = inspect.signature(BaseCAM.__init__).parameters.values()
    return [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY
            and p.name not in _DEPRECATED_OPTIONS]


#: keyword-only parameters of :class:`BaseCAM` kept only as deprecated aliases
#: (not shown in a method's signature, not forwarded as common options)
_DEPRECATED_OPTIONS = frozenset({"target_layer"})
_base_signature = inspect.signature(BaseCAM.__init__)
BaseCAM.__init__.__signature__ = _base_signature.replace(parameters=[
    p for p in _base_signature.parameters.values() if p.name not in _DEPRECATED_OPTIONS])


def _signature_with_common_options(init: Any) -> inspect.Signature:
    """A subclass constructor's signature as ``help`` and ``inspect`` should show
    it: its ``**options: Unpack[CommonOptions]`` (or any ``**kwargs`` it also
    forwards to the base) written out as the common keyword-only parameters;
    a ``**`` of other keywords stays after them."""
    sig = inspect.signature(init)
    params = list(sig.parameters.values())
    var = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
    if not var:
        return sig
    own = {p.name for p in params}
    rest = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    common = [p for p in common_options() if p.name not in own]
    ann = var[0].annotation        # a string under `from __future__ import annotations`
    only_common = (isinstance(ann, str) and ann.startswith("Unpack[")) or get_origin(ann) is Unpack
    return sig.replace(parameters=rest + common + ([] if only_common else var))


def gradients(scores: Tensor, activations: list[Tensor], *,
              retain_graph: bool = False) -> list[Tensor]:
    """∂ score_b / ∂ A_b for every layer, in one backward pass that stops at the
    target layers (images are independent, so the gradient of the sum is per image)."""
    with torch.enable_grad():  # the caller may be inside torch.no_grad()
        grads = list(torch.autograd.grad(scores.sum(), activations, retain_graph=retain_graph))
    for g in grads:
        check_finite(g, "the gradient of the target scores w.r.t. the activations")
    return grads


def _check_activation(model: nn.Module, layer: nn.Module, A: Tensor) -> None:
    if A.dim() == 4 and A.shape[-2] * A.shape[-1] == 1:
        raise ValueError(f"target layer {layer_name(model, layer)!r} has a 1×1 output "
                         f"{tuple(A.shape)}: a CAM needs more than one spatial position; pick "
                         "an earlier layer (with target_layers=None fastcam picks the last layer "
                         "whose output is larger)")
    if not all_finite(A):
        raise ValueError(f"the activation of target layer {layer_name(model, layer)!r} "
                         "contains NaN or infinite values")
