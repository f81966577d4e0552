"""What a run (``fastcam.generate``, the evaluation harness, the commands) checks
and builds before any work, on a model from :func:`fastcam.models.load_model`:
the checks of size, device, precision and output folder, the model's class
count, what ``normalize`` means for it, and the explainer built on it. Every
problem raises :class:`fastcam.errors.UsageError`.

It sits below :mod:`fastcam.generation` and :mod:`fastcam.evaluation`, which make
these checks themselves (their functions are library calls, not only commands),
and above :mod:`fastcam.models`; the argument parsing is :mod:`fastcam.apps`."""
from __future__ import annotations

import os
import tempfile
from typing import Optional, Union

import torch
from torch import nn

from . import engine as _engine
from .errors import UsageError
from .inputs import NORMALIZE_PRESETS, Normalize
from .inputs import resolve_normalize as _resolve_normalize
from .models.loading import LoadedModel, PathLike

#: the smallest ``--size``: EfficientNet-Lite0 (and the torchvision CNNs) reduce
#: the input 32-fold, so 64 is the first size whose target layer has more than one
#: position (2x2); below 32 the bundled model does not run at all
MIN_SIZE = 64
#: the ``--precision`` names (:data:`fastcam.engine.PRECISIONS`)
PRECISION_CHOICES = tuple(_engine.PRECISIONS)
#: the ``normalize`` names (a literal ``MEAN/STD`` text or a (mean, std) pair is accepted too)
NORMALIZE_CHOICES = NORMALIZE_PRESETS


def count_classes(loaded: LoadedModel, size: int) -> int:
    """The number of classes the model outputs: one fp32 forward of a zero image,
    through the engine like every model pass."""
    zero = torch.zeros(1, 3, size, size, device=next(loaded.model.parameters()).device)
    return int(_engine.engine_for(loaded.model).forward(zero).shape[-1])


def resolve_normalize(normalize: Union[str, Normalize], loaded: LoadedModel) -> Normalize:
    """What the model sees, and where masks apply, as float tuples: the library's
    :func:`fastcam.inputs.resolve_normalize` (the presets ``auto`` / ``imagenet`` /
    ``model`` / ``none`` and ``MEAN/STD``) with the loaded model's own statistics;
    a bad value is a :class:`UsageError`."""
    try:
        return _resolve_normalize(normalize, loaded)
    except ValueError as e:
        raise UsageError(f"--{e}") from None  # the library's messages begin "normalize ..."


def build_explainer(cls: type, model: nn.Module, layer: Optional[str], normalize: Normalize,
                    options: Optional[dict] = None, precision: str = "fp32"):
    """``cls(model, [layer], normalize=normalize, precision=precision, **options)``;
    bad options raise :class:`UsageError`. ``precision`` is the engine's
    (:class:`fastcam.engine.Engine`); ``"fp32"`` is every method's default and is
    left to it (an ``options["precision"]`` then stands), so the keyword reaches
    the method only when it is not fp32; a different ``options["precision"]`` is
    an error. The explainer shows no progress bar of its own unless
    ``options["progress"]`` asks: the run that builds it has its bar."""
    options = dict(options or {})
    options.setdefault("progress", False)
    if precision not in PRECISION_CHOICES:
        raise UsageError(f"--precision {precision!r}: choose from {list(PRECISION_CHOICES)}")
    if precision != "fp32":
        if options.get("precision", precision) != precision:
            raise UsageError(f"precision given twice: {precision!r} and the method option "
                             f"precision={options['precision']!r}")
        options["precision"] = precision
    try:
        return cls(model, [layer] if layer else None, normalize=normalize, **options)
    except (ValueError, TypeError) as e:
        raise UsageError(f"method options: {e}") from None


# -- argument checks (before any work) ---------------------------------------------------
def check_size(size: int) -> int:
    """``size`` as an int, or :class:`UsageError` below :data:`MIN_SIZE`."""
    size = int(size)
    if size < MIN_SIZE:
        raise UsageError(f"--size {size}: must be at least {MIN_SIZE} (the model reduces the input "
                         f"32-fold; a smaller input leaves the target layer a single position or none)")
    return size


def check_device(device: Union[str, torch.device, None]) -> None:
    """:class:`UsageError` for a device name torch does not know, or CUDA without a GPU."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise UsageError(f"--device {str(device)!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {str(device)!r}: no CUDA GPU is available (use --device cpu)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"--device {str(device)!r}: only {torch.cuda.device_count()} GPU(s)")


def check_precision(precision: str, device: Union[str, torch.device, None]) -> str:
    """``precision`` if ``device`` (None: where the command would run, ``cuda``
    when available) runs it natively, else :class:`UsageError` with
    :func:`fastcam.engine.check_precision`'s reason: never a silent fallback."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        _engine.check_precision(precision, torch.device(device))
    except ValueError as e:
        raise UsageError(f"--precision {precision}: {e}") from None
    return precision


def check_out_dir(path: PathLike, flag: str = "--out") -> None:
    """:class:`UsageError` unless ``path`` is a folder, or can be made one, that
    this process can write into; creates nothing that was not there."""
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{flag} {path!r} is a file, not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"{flag} {path!r}: {existing!r} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path!r}: cannot write in {existing!r} ({e.strerror or e})") from None


