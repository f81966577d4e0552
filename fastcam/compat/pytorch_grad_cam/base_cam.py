"""The front-end base class: pytorch-grad-cam's calling conventions on fastcam's engine."""
from __future__ import annotations

import warnings
from typing import Any, Callable, ClassVar, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from ... import engine as _engine
from ...engine import Precision
from ...methods.base import BaseCAM as _MethodBase
from . import _maps
from ._targets import method_targets, repeat_targets

ReshapeTransform = Optional[Callable[[Tensor], Tensor]]


def method_option(name: str, cast: Callable[[Any], Any], valid: Callable[[Any], bool],
                  requirement: str, doc: str) -> property:
    """A front-end attribute that reads and writes the fastcam method's option ``name``
    (pytorch-grad-cam's attributes such as ``cam.batch_size = 32``): a value is cast
    with ``cast`` and must satisfy ``valid``, else ``ValueError`` ("``name`` must be
    ``requirement``")."""
    def get(self) -> Any:
        return getattr(self.method, name)

    def set(self, value: Any) -> None:
        value = cast(value)
        if not valid(value):
            raise ValueError(f"{name} must be {requirement}, got {value}")
        setattr(self.method, name, value)

    return property(get, set, doc=doc)


class BaseCAM:
    """A CAM method with pytorch-grad-cam's interface (``pytorch_grad_cam.base_cam.BaseCAM``).

    ``Method(model, target_layers, reshape_transform=None)``, used as::

        with GradCAM(model=model, target_layers=[model.layer4[-1]]) as cam:
            grayscale_cam = cam(input_tensor=x, targets=[ClassifierOutputTarget(281)])
            model_outputs = cam.outputs

    A call returns float32 NumPy maps (B, H, W) in [0, 1] at the input's
    resolution, with pytorch-grad-cam's numerics: per layer ``ReLU(Σ_k w_k A_k)``
    (or its first principal component with ``eigen_smooth``), min-max scaled and
    resized bilinearly; several layers averaged and scaled again. The work runs
    batched on the model's device in fastcam's engine (the input is moved there,
    as pytorch-grad-cam does); ``cam.outputs`` holds the model outputs (B, C) of
    the last call, detached.

    Args:
        model: the network; ``model.eval()`` is called, as in pytorch-grad-cam.
        target_layers: a list of modules (or fastcam's dotted names).
        reshape_transform: turns a layer's output into (B, K, h, w), e.g.
            :func:`~fastcam.compat.pytorch_grad_cam.utils.reshape_transforms.vit_reshape_transform`;
            the gradient is transformed the same way, as there.
        use_cuda: legacy argument of pytorch-grad-cam < 1.4, accepted with a
            ``DeprecationWarning`` and ignored (move the model to its device).
        precision: how fastcam's engine runs the model (keyword only; not part of
            pytorch-grad-cam's interface): ``"fp32"`` (default, the model as
            given), ``"bf16"`` or ``"fp16"`` (autocast; the CAM algebra stays
            float32), passed to the fastcam method. A name outside these, or a
            precision the model's device cannot run natively, is a ``ValueError``
            here (:func:`fastcam.engine.check_precision`), never a fallback.
        **options: keyword options of the fastcam method behind the class
            (e.g. ``normalize=``); not part of pytorch-grad-cam's interface.

    Better than pytorch-grad-cam:
      - a list of targets whose length is not the batch size raises
        ``ValueError`` (theirs silently explains only the first images);
      - an error inside ``with`` propagates (theirs prints and swallows IndexError);
      - hooks exist only during a call, so nothing leaks when ``release``/``__del__``
        is forgotten; gradients stop at the target layers (no backward through
        the whole network, no parameter ``.grad`` written);
      - ``aug_smooth`` runs its 6 augmentations as one batch (one augmentation at
        a time if the device runs out of memory), and ``cam.outputs`` is then the
        output on the input as given (theirs: on the last augmentation);
      - ``eigen_smooth`` is one batched SVD on the device with a fixed sign
        (see :mod:`~fastcam.compat.pytorch_grad_cam.utils.svd_on_activations`).
    """

    #: the fastcam method computing the channel weights or the maps
    method_class: ClassVar[type[_MethodBase]]
    #: maps are Σ_k w_k A_k of per-layer channel weights, or Σ_k T_k of an element-wise
    #: method's weighted activations (eigen_smooth applies to both)
    weighted: ClassVar[bool] = True
    #: whether the method can take a reshape_transform (model-splitting ones cannot)
    takes_reshape_transform: ClassVar[bool] = True
    #: a method whose per-layer map is a projection of the activations (EigenCAM and
    #: friends, ``weighted = False``): the front-end combines the method's per-layer
    #: ``ReLU(p)`` (``method.last.low_res``) the pytorch-grad-cam way, and
    #: ``eigen_smooth`` is accepted and changes nothing, as there (their
    #: ``get_cam_image`` ignores it); other non-weighted methods refuse it
    projected: ClassVar[bool] = False
    #: whether target_layers must name a layer (FullGrad's are ignored: it may get [])
    needs_target_layers: ClassVar[bool] = True

    def __init__(self, model: nn.Module, target_layers: Sequence[Union[nn.Module, str]],
                 reshape_transform: ReshapeTransform = None, use_cuda: Optional[bool] = None,
                 *, precision: Precision = "fp32", **options: Any) -> None:
        if use_cuda is not None:
            warnings.warn("use_cuda is deprecated (pytorch-grad-cam removed it) and ignored: "
                          "the CAM is computed on the model's device", DeprecationWarning,
                          stacklevel=2 + (type(self).__init__ is not BaseCAM.__init__))
        if self.needs_target_layers and (target_layers is None or (
                isinstance(target_layers, (list, tuple)) and not target_layers)):
            raise ValueError("target_layers must name at least one layer, e.g. [model.layer4[-1]]")
        if reshape_transform is not None and not self.takes_reshape_transform:
            raise ValueError(f"{type(self).__name__} splits the model at the target layer "
                             "and cannot take a reshape_transform")
        param = next(model.parameters(), None)
        _engine.check_precision(precision, None if param is None else param.device)
        if precision != "fp32":          # fp32 is every method's default
            options["precision"] = precision
        model.eval()
        self.model = model
        self.precision = precision
        self.method = self.method_class(model, target_layers, **options)
        self.method.reshape_transform = reshape_transform
        self.target_layers = self.method.target_layers
        self.reshape_transform = reshape_transform
        self.outputs: Optional[Tensor] = None

    # -- context manager -----------------------------------------------------------
    def __enter__(self) -> "BaseCAM":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False        # never swallow an error

    # -- the call ------------------------------------------------------------------
    def __call__(self, input_tensor: Tensor, targets: Optional[Sequence[Callable]] = None,
                 aug_smooth: bool = False, eigen_smooth: bool = False) -> np.ndarray:
        """CAMs of ``input_tensor`` (B, C, H, W): float32 NumPy (B, H, W) in [0, 1].

        ``targets``: None (each image's predicted class), or one per image —
        ``ClassifierOutputTarget(c)`` and friends or any callable of one image's
        output. ``aug_smooth``: average over horizontal flips × brightness
        factors {0.9, 1, 1.1} (pytorch-grad-cam's ttach default).
        ``eigen_smooth``: first principal component of the weighted activations.
        """
        if eigen_smooth and self.projected:
            eigen_smooth = False
        if eigen_smooth and not self.weighted:
            raise ValueError(f"eigen_smooth needs a map of the form Σ_k w_k A_k; "
                             f"{type(self).__name__} makes its maps otherwise")
        x = self._to_model_device(input_tensor)
        spec = method_targets(targets, x.shape[0])
        if aug_smooth:
            maps, outputs = self._augmented(x, spec, eigen_smooth)
        else:
            maps, outputs = self._maps(x, spec, eigen_smooth)
        self.outputs = outputs
        return maps.detach().float().cpu().numpy()

    def forward(self, input_tensor: Tensor, targets: Optional[Sequence[Callable]] = None,
                eigen_smooth: bool = False) -> np.ndarray:
        """One pass without augmentation (pytorch-grad-cam's ``forward``)."""
        return self(input_tensor, targets, aug_smooth=False, eigen_smooth=eigen_smooth)

    def _to_model_device(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"input_tensor must be a torch.Tensor, got {type(x).__name__}")
        param = next(self.model.parameters(), None)
        return x if param is None else x.to(param.device)

    def _maps(self, x: Tensor, targets, eigen_smooth: bool) -> tuple[Tensor, Tensor]:
        """(maps (B, H, W), model outputs) for one batch."""
        size = tuple(x.shape[-2:])
        if self.weighted:
            run = self.method.compute_weights(x, targets)
            if run.terms:       # an element-wise method: Σ_k T_k (eigen_smooth: T's first component)
                ones = [torch.ones(T.shape[:2], dtype=T.dtype, device=T.device) for T in run.terms]
                maps = _maps.combine_layers(run.terms, ones, size, eigen_smooth)
            else:
                maps = _maps.combine_layers(run.activations, run.weights, size, eigen_smooth)
            return maps, run.logits.detach()
        maps = self.method(x, targets)
        low_res = self.method.last.low_res
        if self.projected and len(low_res) > 1:     # each layer min-maxed before resizing, as there
            ones = [torch.ones(r.shape[0], 1, dtype=r.dtype, device=r.device) for r in low_res]
            maps = _maps.combine_layers([r[:, None] for r in low_res], ones, size)
        return maps, self.method.last.logits.detach()

    def _augmented(self, x: Tensor, targets, eigen_smooth: bool) -> tuple[Tensor, Tensor]:
        B = x.shape[0]
        copies = len(_maps.FLIPS) * len(_maps.FACTORS)
        try:
            maps, outputs = self._maps(_maps.augmented_batch(x), repeat_targets(targets, copies),
                                       eigen_smooth)
        except torch.cuda.OutOfMemoryError:
            maps = None
        if maps is None:   # retried outside the except: its traceback no longer pins the batch
            if x.device.type == "cuda":
                torch.cuda.empty_cache()
            maps, outputs = _maps.augment_one_by_one(
                lambda xa: self._maps(xa, targets, eigen_smooth), x)
        return _maps.deaugment_mean(maps, B), outputs[_maps.identity_rows(B)]

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(target_layers={self.target_layers}, "
                f"reshape_transform={self.reshape_transform}, precision={self.precision!r})")
