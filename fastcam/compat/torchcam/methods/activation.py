"""TorchCAM's activation-based extractors (``torchcam.methods.activation``) on fastcam's methods."""
from __future__ import annotations

import logging
from typing import Any, Literal, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ....engine import Precision, check_precision
from ....methods.cam import CAM as _CAMNative
from ....methods.iscam import ISCAM as _ISCAMNative
from ....methods.scorecam import ScoreCAM as _ScoreCAMNative
from ....methods.sscam import SSCAM as _SSCAMNative
from ...numerics import normalize
from ....targets import Targets
from .core import _CAM, ClassIdx, LayerArg, _model_eval, _target_list

__all__ = ["CAM", "ScoreCAM", "SSCAM", "ISCAM"]

logger = logging.getLogger(__name__)

Numerics = Literal["torchcam", "fastcam"]


def _find_fc(model: nn.Module, fc_layer: Union[None, str, nn.Module]) -> nn.Module:
    """TorchCAM's fully connected layer of CAM: by name or module, else the only ``nn.Linear``."""
    modules = dict(model.named_modules())
    if isinstance(fc_layer, str):
        if fc_layer not in modules:
            raise ValueError(f"unknown `fc_layer` name {fc_layer!r}; see `model.named_modules()`")
        return modules[fc_layer]
    if isinstance(fc_layer, nn.Module):
        if not any(m is fc_layer for m in modules.values()):
            raise ValueError("unable to locate `fc_layer` inside the specified model.")
        return fc_layer
    if fc_layer is not None:
        raise TypeError("invalid argument type for `fc_layer`")
    linears = [(n, m) for n, m in modules.items() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("unable to resolve `fc_layer` automatically, please specify its value.")
    if len(linears) > 1:
        raise ValueError("This CAM method does not support multiple fully connected layers.")
    logger.warning(f"no value was provided for `fc_layer`, thus set to '{linears[0][0]}'.")
    return linears[0][1]


class CAM(_CAM):
    """CAM (Zhou et al. 2016): ``M_c = Σ_k W[c, k] A_k`` (paper eq. 2) with W the
    fully connected layer after the global pooling — the weights of
    :class:`fastcam.methods.cam.CAM`. As in TorchCAM the map gets no ReLU, and
    the scores need not be passed.

    Args:
        fc_layer: the fully connected layer (module or name); None -> the model's
            only ``nn.Linear`` (several are an error, as in TorchCAM). A 1×1
            convolution in its place is accepted (its weight viewed as (C, K)).
    """

    relu = False

    def __init__(self, model: nn.Module, target_layer: LayerArg = None,
                 fc_layer: Union[None, str, nn.Module] = None,
                 input_shape: tuple[int, ...] = (3, 224, 224), **kwargs: Any) -> None:
        if isinstance(target_layer, (list, tuple)) and len(target_layer) > 1:
            raise ValueError("base CAM does not support multiple target layers")
        fc = _find_fc(model, fc_layer)          # before any hook is registered
        weight = getattr(fc, "weight", None)
        if not isinstance(weight, Tensor) or weight.dim() < 2:
            raise ValueError(f"fc_layer {type(fc).__name__} has no (C, K) weight")
        self.fc_layer = fc
        self._fc_weights = weight.detach().reshape(*weight.shape[:2])
        super().__init__(model, target_layer, input_shape, **kwargs)

    def _make_method(self):
        # a 1×1 convolution head has no native counterpart: its rows are read directly
        return _CAMNative(self.model, self._layers, fc_layer=self.fc_layer) \
            if isinstance(self.fc_layer, nn.Linear) else None

    def _num_classes(self, scores: Any) -> Optional[int]:
        return self._fc_weights.shape[0]

    @torch.no_grad()
    def _get_weights(self, class_idx: ClassIdx, scores: Any = None, **_: Any) -> list[Tensor]:
        A = self.hook_a[0]
        idx = self._class_indices(class_idx, A.shape[0], A.device)
        if self._method is None:                       # a 1×1 convolution head
            return [self._fc_weights[idx]]
        ctx = self._context([A], Targets(idx, None))
        return self._method.channel_weights(ctx)


class ScoreCAM(_CAM):
    """Score-CAM (Wang et al. 2020) with TorchCAM's interface; the masked copies run
    through the engine of :class:`fastcam.methods.scorecam.ScoreCAM`, chunk by chunk.

    ``numerics="torchcam"`` (default), TorchCAM 0.5's formulas: channel k's mask is
    ``up(minmax(A_k))`` (scaled at the layer's resolution, ``(A−min)/(max−min+1e-8)``,
    then bilinear, align_corners=False) times the recorded input; ``w = softmax_k``
    of the target scores on the masked copies (TorchCAM subtracts the score of the
    unmasked input first, a constant per image that the softmax ignores, so no
    forward is spent on it). The model's input is recorded by a forward pre-hook
    and the reruns happen in eval mode with the hooks off, as in TorchCAM.
    ``numerics="fastcam"``: the native class's default mode (``minmax(up(A_k))``).

    Args:
        batch_size: masked copies per forward (at most; the engine may use fewer).
        precision: how the engine runs the reruns (keyword; not TorchCAM's):
            ``"fp32"`` (default) or ``"bf16"``/``"fp16"`` autocast (:mod:`fastcam.engine`).
    """

    relu = True
    targets_supported = True
    records_input = True
    #: the weights are always the native method's (SSCAM, ISCAM)
    _native_only = False

    def __init__(self, model: nn.Module, target_layer: LayerArg = None, batch_size: int = 32,
                 input_shape: tuple[int, ...] = (3, 224, 224), *, numerics: Numerics = "torchcam",
                 precision: Precision = "fp32", **kwargs: Any) -> None:
        if numerics not in ("torchcam", "fastcam"):
            raise ValueError(f"numerics must be 'torchcam' or 'fastcam', got {numerics!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        check_precision(precision)
        self.numerics = numerics
        self.precision = precision
        self.bs = batch_size
        super().__init__(model, target_layer, input_shape, **kwargs)

    def _make_method(self):
        return _ScoreCAMNative(self.model, self._layers, batch_size=self.bs, precision=self.precision)

    def _score_fn(self, class_idx: Optional[ClassIdx], targets: Any, batch: int, device: torch.device):
        if targets is not None:
            fns = _target_list(targets, batch)

            def by_target(out: Tensor, image: Tensor) -> Tensor:
                return torch.stack([fns[int(i)](row).reshape(()) for row, i in zip(out, image.tolist())])
            return by_target
        idx = self._class_indices(class_idx, batch, device)
        top = int(idx.max())

        def by_class(out: Tensor, image: Tensor) -> Tensor:
            if top >= out.shape[1]:
                raise ValueError(f"Incorrect `class_idx` argument value: {class_idx!r} is outside "
                                 f"[0, {out.shape[1]})")
            return out.gather(1, idx[image][:, None])[:, 0]
        return by_class

    def _masks(self, A: Tensor) -> Tensor:
        """The (B·K, h, w) masks at the layer's resolution (upsampled chunk by chunk)."""
        return normalize(A.float()).flatten(0, 1)

    def _channel_scores(self, A: Tensor, x: Tensor, score_fn) -> Tensor:
        """(B, K) target scores of the copies ``up(mask_k) ⊙ x_b``."""
        B, K = A.shape[:2]
        masks = self._masks(A)
        image = torch.arange(B, device=A.device).repeat_interleave(K)
        size = tuple(x.shape[2:])
        mode = {2: "bilinear", 3: "trilinear"}.get(len(size), "nearest")
        options = {} if mode == "nearest" else {"align_corners": False}

        def build(a: int, b: int) -> Tensor:
            up = F.interpolate(masks[a:b, None], size, mode=mode, **options)
            return up.to(x.dtype) * x[image[a:b]]
        scores = self._method.engine.stream_scores(B * K, build, image, score_fn, self.bs)
        return scores.view(B, K)

    @torch.no_grad()
    def _get_weights(self, class_idx: Optional[ClassIdx], scores: Any = None, *, targets: Any = None,
                     **_: Any) -> list[Tensor]:
        x = self._input
        batch = self.hook_a[0].shape[0]
        if x.shape[0] != batch:
            raise ValueError(f"the recorded input has {x.shape[0]} samples but the activations {batch}")
        score_fn = self._score_fn(class_idx, targets, batch, x.device)
        with self._hooks_off(), _model_eval(self.model):
            if self.numerics == "fastcam" or self._native_only:
                return self._native_weights(class_idx, targets, x)
            return [self._channel_scores(A, x, score_fn).softmax(dim=1) for A in self.hook_a]

    def _native_weights(self, class_idx: Optional[ClassIdx], targets: Any, x: Tensor) -> list[Tensor]:
        batch = x.shape[0]
        resolved = self._resolved_targets(class_idx, targets, batch, x.device)
        ctx = self._context(list(self.hook_a), resolved, x=x)
        return self._method.channel_weights(ctx)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self.bs})"



class SSCAM(ScoreCAM):
    """SS-CAM (Wang et al. 2020) with TorchCAM's interface, on the native
    :class:`fastcam.methods.sscam.SSCAM` (TorchCAM 0.5's numerics: N noisy masks
    ``up(minmax(A_k)) + δ``, δ ~ N(0, std²) per pixel at the input's resolution;
    ``w = softmax_k`` of the mean target score).

    The noise comes from fastcam's seeded generator (``seed=None``: drawn from
    torch's global generator at each call), not from TorchCAM's sequence of
    ``Normal.sample`` calls, so maps agree with TorchCAM's in distribution, not
    draw for draw.
    """

    _native_only = True

    def __init__(self, model: nn.Module, target_layer: LayerArg = None, batch_size: int = 32,
                 num_samples: int = 35, std: float = 2.0, input_shape: tuple[int, ...] = (3, 224, 224),
                 *, seed: Optional[int] = None, **kwargs: Any) -> None:
        self.num_samples, self.std, self.seed = num_samples, std, seed
        super().__init__(model, target_layer, batch_size, input_shape, **kwargs)

    def _make_method(self):
        return _SSCAMNative(self.model, self._layers, batch_size=self.bs, num_samples=self.num_samples,
                            std=self.std, seed=self.seed, precision=self.precision)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self.bs}, num_samples={self.num_samples}, std={self.std})"


class ISCAM(ScoreCAM):
    """IS-CAM (Naidu et al. 2020) with TorchCAM's interface, on the native
    :class:`fastcam.methods.iscam.ISCAM` (TorchCAM 0.5's numerics: the copies
    ``c_s · up(minmax(A_k)) ⊙ x`` with ``c_s = Σ_{j≤s} j/N``; ``w = softmax_k`` of
    the mean target score).
    """

    _native_only = True

    def __init__(self, model: nn.Module, target_layer: LayerArg = None, batch_size: int = 32,
                 num_samples: int = 10, input_shape: tuple[int, ...] = (3, 224, 224), **kwargs: Any) -> None:
        self.num_samples = num_samples
        super().__init__(model, target_layer, batch_size, input_shape, **kwargs)

    def _make_method(self):
        return _ISCAMNative(self.model, self._layers, batch_size=self.bs, num_samples=self.num_samples,
                            precision=self.precision)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_size={self.bs}, num_samples={self.num_samples})"
