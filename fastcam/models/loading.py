"""What fastcam's commands (``generate``, ``explain``, ``eval``) share to set up a
model: loading it by name with a weights file (state-dict checks and hashes), its
target layer, what ``normalize`` means for it, building an explainer on it, and
the ``KEY=VALUE`` option parser, and the checks every command makes before any
work (size, device, precision, output folder). Every problem raises
:class:`UsageError`."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from .. import engine as _engine
from ..inputs import Normalize

#: the bundled pretrained model's name
BUNDLED = "efficientnet_lite0"
#: the smallest ``--size``: EfficientNet-Lite0 (and the torchvision CNNs) reduce
#: the input 32-fold, so 64 is the first size whose target layer has more than one
#: position (2x2); below 32 the bundled model does not run at all
MIN_SIZE = 64
#: the ``--precision`` names (:data:`fastcam.engine.PRECISIONS`)
PRECISION_CHOICES = tuple(_engine.PRECISIONS)
#: the ``normalize`` names (a literal ``MEAN/STD`` text or a (mean, std) pair is accepted too)
NORMALIZE_CHOICES = ("auto", "imagenet", "model", "none")

PathLike = Union[str, os.PathLike]


class UsageError(ValueError):
    """A problem with a command's arguments or inputs (model, weights, layer, files,
    store); the message is one line meant for the user: the command line prints
    it and exits with status 2. ``fastcam.generate.GenerateError`` and
    ``fastcam.evaluate.EvalError`` are this class."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to explain: in eval mode, its name, its target layer's dotted
    name, what its weights were (``"bundled"``, ``{"file", "sha256"}``,
    ``{"sha256"}`` of a given module's state, or None for random weights) and the
    input normalisation it was trained with (None when unknown)."""

    model: nn.Module
    name: str
    layer: str
    weights: Any
    normalization: Optional[tuple]


# -- weights files --------------------------------------------------------------------
def sha256_file(path: PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def sha256_state(model: nn.Module) -> str:
    """sha256 of the model's state dict (names and raw bytes, in order)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    return h.hexdigest()


def read_state_dict(weights: PathLike) -> dict[str, Tensor]:
    """The state dict in ``weights`` (also under a ``state_dict`` or ``model`` key,
    and without DDP's ``module.`` prefix), read with ``weights_only``."""
    weights = os.fspath(weights)
    if not os.path.isfile(weights):
        raise UsageError(f"--weights {weights!r}: no such file")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"--weights {weights!r}: not a readable state dict ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"--weights {weights!r}: expected a state dict (name -> tensor)")
    if state and all(k.startswith("module.") for k in state):    # saved from DDP
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_state(model: nn.Module, state: dict[str, Tensor], weights: PathLike) -> None:
    """``model.load_state_dict(state, strict=True)``; a mismatch names what is
    missing and unexpected."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        missing = sorted(set(model.state_dict()) - set(state))
        unexpected = sorted(set(state) - set(model.state_dict()))
        detail = (f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
                  f"(e.g. {unexpected[:2]})") if missing or unexpected else \
            str(e).splitlines()[-1].strip()[:200]
        raise UsageError(f"--weights {os.fspath(weights)!r} does not match the model: {detail}") from None


def _file_record(weights: PathLike, hash_weights: bool) -> dict:
    return {"file": os.path.basename(weights), "sha256": sha256_file(weights) if hash_weights else None}


# -- models -------------------------------------------------------------------------------
def _torchvision(name: str, weights: Optional[PathLike], hash_weights: bool) -> tuple[nn.Module, Any]:
    import torchvision

    arch = name.split(":", 1)[1]
    ctor = getattr(torchvision.models, arch, None)
    if arch.startswith("_") or not callable(ctor):
        raise UsageError(f"--model {name!r}: torchvision.models has no model {arch!r}")
    state = read_state_dict(weights) if weights is not None else None
    kwargs: dict = {"weights": None}
    if state is not None:     # a classifier trained on other classes: size the last layer
        last = [v for k, v in state.items() if k.endswith(".weight") and v.dim() == 2]
        if last:
            kwargs["num_classes"] = int(last[-1].shape[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)   # the same random init in every process when no weights are given
        try:
            net = ctor(**kwargs)
        except TypeError:
            kwargs.pop("num_classes", None)
            net = ctor(**kwargs)
    if state is None:
        warnings.warn(f"--model {name}: no --weights given, the model has random weights "
                      "(seeded: the same in every process)", stacklevel=3)
        return net, None
    load_state(net, state, weights)
    return net, _file_record(weights, hash_weights)


def load_model(model: Union[str, nn.Module] = BUNDLED, weights: Optional[PathLike] = None, *,
               layer: Optional[str] = None, size: int = 224,
               device: Union[str, torch.device, None] = None, hash_weights: bool = True) -> LoadedModel:
    """Load ``model`` in eval mode on ``device`` (None: where it is built or given).

    ``model`` is ``"efficientnet_lite0"`` (bundled ImageNet weights, or ``weights``),
    ``"torchvision:ARCH"`` (seeded random init unless ``weights``; the last layer
    sized to the file's classes) or an ``nn.Module`` (``weights`` loaded into it).
    ``weights``: a state-dict file, loaded strictly. ``layer``: see
    :func:`resolve_layer`. ``hash_weights``: record the weights' sha256.
    """
    if isinstance(model, nn.Module):
        net = model
        if weights is not None:
            load_state(net, read_state_dict(weights), weights)
        name = f"module:{type(model).__name__}"
        record: Any = {"sha256": sha256_state(net)} if hash_weights else None
        own = getattr(net, "normalization", None)
    elif str(model) == BUNDLED:
        from .efficientnet_lite import efficientnet_lite0

        name = BUNDLED
        net = efficientnet_lite0(pretrained=weights is None)
        if weights is None:
            record = "bundled"
        else:
            load_state(net, read_state_dict(weights), weights)
            record = _file_record(weights, hash_weights)
        own = tuple(tuple(v) for v in net.normalization)
    elif str(model).startswith("torchvision:"):
        name = str(model)
        net, record = _torchvision(name, weights, hash_weights)
        own = None
    else:
        raise UsageError(f"--model {str(model)!r}: use {BUNDLED!r} (bundled, pretrained) or "
                         "'torchvision:NAME' with --weights FILE")
    net = net.eval() if device is None else net.to(device).eval()
    return LoadedModel(net, name, resolve_layer(net, layer, size, name == BUNDLED), record, own)


def resolve_layer(model: nn.Module, layer: Optional[str], size: int = 224, bundled: bool = False) -> str:
    """The target layer's dotted name: ``layer`` checked, or by default the bundled
    model's ``_head_act``, else the last spatial layer found by a dry run at ``size``."""
    from ..network.layers import find_spatial_layer, resolve_layers

    if layer is None:
        if bundled:
            return "_head_act"
        with torch.no_grad():
            module = find_spatial_layer(model, torch.zeros(1, 3, size, size,
                                                            device=next(model.parameters()).device))
        return next(n for n, m in model.named_modules() if m is module)
    try:
        resolve_layers(model, [layer])
    except ValueError as e:
        raise UsageError(f"--layer: {e}") from None
    return layer


def count_classes(loaded: LoadedModel, size: int) -> int:
    """The number of classes the model outputs (one forward of a zero image)."""
    with torch.no_grad():
        return int(loaded.model(torch.zeros(1, 3, size, size,
                                            device=next(loaded.model.parameters()).device)).shape[-1])


def resolve_normalize(normalize: Union[str, Normalize], loaded: LoadedModel) -> Normalize:
    """What the model sees, and where masks apply, as float tuples.

    * ``"auto"`` / ``"imagenet"`` / ``"model"``: images are pixel-space in [0, 1];
      every mask multiplies the pixels (masked pixels black) *before* the model's
      input normalisation, which is the model's own (``model.normalization``:
      mean = std = 0.5 for the bundled EfficientNet-Lite0) or, for a model without
      one, the ImageNet mean/std. (``imagenet`` is the ImageNet evaluation
      protocol of the papers; the statistics are always the model's, never
      ImageNet's forced onto a model trained otherwise.)
    * None / ``"none"``: the model gets the [0, 1] pixels as they are (a model
      with its normalisation built in) and masks multiply them.
    * ``(mean, std)`` or the text ``MEAN/STD``
      (``"0.485,0.456,0.406/0.229,0.224,0.225"``): explicit statistics, masks
      before normalisation.
    """
    from ..data import IMAGENET_MEAN, IMAGENET_STD

    if isinstance(normalize, str):
        text, choice = normalize, normalize.strip().lower()
        if choice in ("auto", "imagenet", "model"):
            own = loaded.normalization
            normalize = own if own is not None else (IMAGENET_MEAN, IMAGENET_STD)
        elif choice == "none":
            normalize = None
        elif "/" in choice:
            try:
                normalize = tuple(tuple(float(v) for v in part.split(",")) for part in choice.split("/", 1))
            except ValueError:
                raise UsageError(f"--normalize {text!r}: expected MEAN/STD as comma-separated numbers") from None
            mean, std = normalize
            if len(mean) not in (1, 3) or len(std) != len(mean) or min(std) <= 0:
                raise UsageError(f"--normalize {text!r}: need 1 or 3 means and as many positive stds")
        else:
            raise UsageError(f"--normalize {text!r}: choose from {list(NORMALIZE_CHOICES)} or MEAN/STD")
    if normalize is None:
        return None
    mean, std = normalize
    return (tuple(float(v) for v in mean), tuple(float(v) for v in std))


def build_explainer(cls: type, model: nn.Module, layer: Optional[str], normalize: Normalize,
                    options: Optional[dict] = None, precision: str = "fp32"):
    """``cls(model, [layer], normalize=normalize, precision=precision, **options)``;
    bad options raise :class:`UsageError`. ``precision`` is the engine's
    (:class:`fastcam.engine.Engine`); ``"fp32"`` is every method's default and is
    left to it (an ``options["precision"]`` then stands), so the keyword reaches
    the method only when it is not fp32; a different ``options["precision"]`` is
    an error."""
    options = dict(options or {})
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


# -- argument checks (before any work) -------------------------------------------------
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


# -- command line --------------------------------------------------------------------------
def key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as JSON, else kept as a string; ``-`` in KEY -> ``_``."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip().replace("-", "_"), parsed
