"""Model loading for ``fastcam explain`` / ``fastcam eval``: the bundled
EfficientNet-Lite0 or a torchvision architecture with the user's weights file,
the target layer, and what ``--normalize`` means for that model.

Loading is shared with ``fastcam generate`` (:func:`fastcam.generate.run.load_model`);
its one-line errors (missing file, unreadable file, a state dict that does not
match the architecture) become :class:`EvalError`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..generate.dataset import GenerateError
from ..generate.run import BUNDLED
from ..generate.run import load_model as _load_model
from ..generate.run import resolve_layer as _resolve_layer
from ..generate.run import resolve_normalize as _resolve_normalize
from ..inputs import Normalize
from .errors import EvalError

#: ``--normalize`` choices (a literal ``MEAN/STD`` is accepted too)
NORMALIZE_CHOICES = ("imagenet", "model", "none")


@dataclass
class LoadedModel:
    """A model ready to explain: eval mode, its target layer's dotted name, and
    the input normalisation it was trained with (None when unknown)."""

    model: nn.Module
    name: str
    layer: str
    own_normalization: Optional[tuple]


def load_model(spec: str = BUNDLED, weights: Optional[str] = None, layer: Optional[str] = None,
               size: int = 224, device: str = "cpu") -> LoadedModel:
    """``spec`` is ``"efficientnet_lite0"`` (bundled ImageNet weights, or
    ``weights``) or ``"torchvision:ARCH"`` (random init unless ``weights``);
    ``layer`` None picks the bundled model's ``_head_act`` or the last spatial
    layer. Raises :class:`EvalError` with a one-line message."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model, name, _, own = _load_model(spec, weights, hash_weights=False)
        model = model.to(device)
        layer_name = _resolve_layer(model, layer, size, name == BUNDLED)
    except GenerateError as e:
        raise EvalError(str(e)) from None
    if spec != BUNDLED and weights is None:
        warnings.warn(f"--model {spec}: no --weights given, the model has random weights", stacklevel=2)
    return LoadedModel(model, name, layer_name, own)


def resolve_normalize(choice: str, loaded: LoadedModel) -> Normalize:
    """What the model sees, and where masks apply.

    * ``imagenet`` / ``model``: images are pixel-space in [0, 1]; every mask
      multiplies the pixels (masked pixels black) *before* the model's input
      normalisation, which is the model's own (``model.normalization``: mean =
      std = 0.5 for the bundled EfficientNet-Lite0) or, for a torchvision model,
      the ImageNet mean/std its weights were trained with. (``imagenet`` is the
      ImageNet evaluation protocol of the papers; the statistics are always the
      model's, never ImageNet's forced onto a model trained otherwise.)
    * ``none``: the model gets the [0, 1] pixels as they are (a model with its
      normalisation built in) and masks multiply them.
    * ``MEAN/STD``: e.g. ``0.485,0.456,0.406/0.229,0.224,0.225``: explicit
      statistics, masks before normalisation.
    """
    c = str(choice).strip().lower()
    if c in ("imagenet", "model"):
        return _resolve_normalize("auto", loaded.own_normalization)
    if c == "none":
        return None
    if "/" in c:
        try:
            mean, std = (tuple(float(v) for v in part.split(",")) for part in c.split("/", 1))
        except ValueError:
            raise EvalError(f"--normalize {choice!r}: expected MEAN/STD as comma-separated numbers") from None
        if len(mean) not in (1, 3) or len(std) != len(mean) or min(std) <= 0:
            raise EvalError(f"--normalize {choice!r}: need 1 or 3 means and as many positive stds")
        return mean, std
    raise EvalError(f"--normalize {choice!r}: choose from {list(NORMALIZE_CHOICES)} or MEAN/STD")


def describe_normalize(normalize: Normalize) -> str:
    """One line for the table's header."""
    if normalize is None:
        return "none (the model sees [0, 1] pixels; masks multiply them)"
    mean, std = normalize
    fmt = lambda v: "(" + ", ".join(f"{x:g}" for x in v) + ")"   # noqa: E731
    return f"masks multiply [0, 1] pixels before (x - mean)/std, mean={fmt(mean)}, std={fmt(std)}"


def predict(model: nn.Module, x: torch.Tensor, normalize: Normalize, batch_size: int = 32) -> torch.Tensor:
    """Softmax probabilities (B, classes) of the clean images."""
    from ..inputs import normalizer

    norm = normalizer(normalize, x)
    with torch.inference_mode():
        return torch.cat([model(norm(x[i:i + batch_size])).softmax(1)
                          for i in range(0, len(x), batch_size)])
