"""Input checks and the one convention for inputs (``normalize``): the preset
names the command line and the library share, and the dtypes a batch may have."""
from __future__ import annotations

import itertools
from typing import Any, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

Normalize = Optional[Tuple[Sequence[float], Sequence[float]]]
#: what a caller may pass as ``normalize``: None, ``(mean, std)``, a preset name of
#: :data:`NORMALIZE_PRESETS` or the text ``"MEAN/STD"``
NormalizeSpec = Union[Normalize, str]
#: the ``normalize`` preset names (Python and the command line's ``--normalize``);
#: see :func:`resolve_normalize`
NORMALIZE_PRESETS = ("auto", "imagenet", "model", "none")


def resolve_normalize(normalize: NormalizeSpec, model: Any = None) -> Normalize:
    """``normalize`` as None or ``(mean, std)`` float tuples, for ``model`` (an
    ``nn.Module``, or anything with a ``normalization`` attribute, as
    :class:`fastcam.models.LoadedModel`; None: a model that declares none).

    * ``"imagenet"`` / ``"auto"`` / ``"model"``: images are pixel-space in [0, 1]
      and the model sees them normalised by its own statistics — the model's
      ``normalization`` attribute (``(mean, std)``; the bundled EfficientNet-Lite0
      declares mean = std = 0.5) — or, for a model that declares none, the
      ImageNet mean/std (0.485, 0.456, 0.406)/(0.229, 0.224, 0.225). ImageNet's
      statistics are never forced onto a model that declares its own: it was
      trained with those. ``"model"`` requires the declaration.
    * None / ``"none"``: the model sees the tensor given; masks multiply it.
    * ``(mean, std)`` or the text ``"MEAN/STD"`` (``"0.485,0.456,0.406/0.229,0.224,0.225"``):
      explicit statistics.

    Raises ``ValueError`` for an unknown name, malformed text, or a pair that is
    not one or three means with as many positive stds.
    """
    if isinstance(normalize, str):
        text, choice = normalize, normalize.strip().lower()
        if choice in ("auto", "imagenet", "model"):
            own = getattr(model, "normalization", None) if model is not None else None
            if own is None and choice == "model":
                raise ValueError("normalize='model': the model declares no `normalization` "
                                 "(mean, std); pass the pair or 'imagenet'")
            if own is None:
                from .data.imagenet import IMAGENET_MEAN, IMAGENET_STD
                own = (IMAGENET_MEAN, IMAGENET_STD)
            normalize = own
        elif choice == "none":
            return None
        elif "/" in choice:
            try:
                normalize = tuple(tuple(float(v) for v in part.split(",")) for part in choice.split("/", 1))
            except ValueError:
                raise ValueError(f"normalize {text!r}: expected MEAN/STD as comma-separated "
                                 "numbers") from None
        else:
            raise ValueError(f"normalize {text!r}: choose from {list(NORMALIZE_PRESETS)}, "
                             "'MEAN/STD' or a (mean, std) pair")
    if normalize is None:
        return None
    if isinstance(normalize, Tensor) or not isinstance(normalize, Sequence) or len(normalize) != 2:
        raise ValueError(f"normalize must be None, a preset name {list(NORMALIZE_PRESETS)} or a "
                         f"(mean, std) pair, got {normalize!r}")
    mean, std = (_floats(v) for v in normalize)
    if not mean or not std or min(std) <= 0:
        raise ValueError(f"normalize {normalize!r}: need means and positive stds")
    return mean, std


def _floats(v: Any) -> tuple[float, ...]:
    if isinstance(v, Tensor):
        return tuple(float(t) for t in v.reshape(-1).tolist())
    if isinstance(v, (int, float)):
        return (float(v),)
    return tuple(float(t) for t in v)


def model_dtype(model: nn.Module) -> Optional[torch.dtype]:
    """The dtype of the model's first floating parameter (or buffer); None when it has none."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.is_floating_point():
            return t.dtype
    return None


def as_images(x: Any, dtype: Optional[torch.dtype] = None) -> Tensor:
    """A batch of images checked (:func:`check_images`) and in a dtype the model runs:

    * ``uint8`` (B,C,H,W) holds pixel values 0–255 (what image files decode to):
      it becomes ``x / 255`` in float32 (float64 for a float64 model), pixel-space
      in [0, 1] — the space ``normalize`` expects;
    * a floating batch takes the dtype of a float32 or float64 model (``dtype``,
      the model's: float64 or half precision for a float32 model); a
      half-precision model takes float32 and its own dtype as they are, and any
      other floating batch as float32;
    * any other dtype (bool, other integers, complex) is a ``TypeError``.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    wide = torch.float64 if dtype == torch.float64 else torch.float32
    if x.dtype == torch.uint8:
        x = x.to(wide) / 255
    elif not x.is_floating_point():
        raise TypeError(f"input must be floating point (pixel-space images in [0, 1] or "
                        f"normalised) or uint8 (0-255), got {x.dtype}")
    elif dtype in (torch.float32, torch.float64):
        x = x.to(dtype)
    elif x.dtype not in (torch.float32, dtype):
        x = x.to(torch.float32)
    check_images(x)
    return x


def check_images(x: Tensor) -> None:
    """A batch of images: a 4-D floating tensor (B,C,H,W) of finite values."""
    if not isinstance(x, Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"input must be a 4-D batch (B,C,H,W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"input must be floating point, got {x.dtype} (fastcam.inputs.as_images "
                        "converts uint8 images and other float dtypes)")
    if x.shape[0] == 0:
        raise ValueError("input batch is empty")
    if x.device.type == "meta":
        raise ValueError("input is on the meta device: it holds no values to explain")
    check_finite(x, "input")


HALF = (torch.float16, torch.bfloat16)


def at_least_fp32(t: Tensor) -> Tensor:
    """``t`` in float32 when it is half precision (fp16/bf16), else as it is: the
    dtype the CAM algebra, scores and optimiser state run in."""
    return t.float() if t.dtype in HALF else t


def all_finite(t: Tensor) -> bool:
    """Whether ``t`` holds no NaN and no ±inf."""
    if not t.numel():
        return True
    # min and max propagate NaN and expose ±inf: one pass, no boolean copy of t
    lo, hi = torch.aminmax(t.detach())
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def check_finite(t: Tensor, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` if ``t`` holds NaN or ±inf."""
    if not all_finite(t):
        raise ValueError(f"{what} contains NaN or infinite values")


def normalizer(normalize: NormalizeSpec, x: Tensor):
    """The function the model input goes through: identity when ``normalize`` is
    None; else ``(x − mean)/std`` per channel, x being pixel-space in [0, 1]
    (masks then multiply the pixel-space image: masked pixels are black). A
    preset name is resolved by :func:`resolve_normalize` without a model (the
    ImageNet statistics); explainers resolve it with their model."""
    if isinstance(normalize, str):
        normalize = resolve_normalize(normalize)
    if normalize is None:
        return lambda t: t
    mean, std = normalize
    mean = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    if not bool(torch.isfinite(mean).all() & torch.isfinite(std).all()):
        raise ValueError("normalize: mean and std must be finite")
    if mean.shape[1] not in (1, x.shape[1]) or std.shape[1] not in (1, x.shape[1]):
        raise ValueError(f"normalize has {mean.shape[1]} means / {std.shape[1]} stds for "
                         f"{x.shape[1]} channels")
    if bool((std <= 0).any()):
        raise ValueError("normalize: every std must be positive")
    return lambda t: (t - mean) / std
