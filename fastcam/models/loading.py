"""Loading a model to explain: by name (the bundled EfficientNet-Lite0,
``torchvision:ARCH``) or as a module, with a weights file (state-dict checks and
hashes), and its target layer. Every problem raises
:class:`fastcam.errors.UsageError`. What a run checks and builds on top of the
loaded model (normalisation, explainer, device and precision checks) is
:mod:`fastcam.preflight`; the command line is :mod:`fastcam.apps`."""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from ..errors import UsageError

#: the bundled pretrained model's name
BUNDLED = "efficientnet_lite0"

PathLike = Union[str, os.PathLike]


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
