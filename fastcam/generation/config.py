"""What identifies a ``fastcam generate`` run: :class:`RunConfig`, the store's
checked metadata (:data:`fastcam.generation.store.CHECKED_KEYS`), resolved from
the arguments and the loaded model on rank 0."""
from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass
from typing import Any, Optional, Union

import numpy as np
import torch

from ..errors import UsageError
from ..inputs import Normalize
from ..methods import METHODS
from ..models.loading import LoadedModel
from ..preflight import build_explainer, count_classes, resolve_normalize
from .dataset import ImageList, read_targets
from .store import FORMAT

#: the maps' dtypes
DTYPES = {"float16": torch.float16, "float32": torch.float32}


@dataclass(frozen=True)
class RunConfig:
    """The run's identity: a store resumes only a run whose config equals its own.
    The fields are the store's ``CHECKED_KEYS`` after ``format``."""

    method: str                 # canonical name in fastcam.METHODS
    options: dict               # every keyword option of the method, effective values (JSON)
    model: str                  # model name (LoadedModel.name)
    weights: Any                # LoadedModel.weights
    layer: str                  # the target layer's dotted name
    size: int                   # square input and map size
    dtype: str                  # the maps' dtype, a key of DTYPES
    target: Any                 # "predicted", {"class": c} or {"file", "sha256"}
    normalize: Normalize        # (mean, std) float tuples, or None
    precision: str              # the engine's: fp32, bf16 or fp16 (fastcam.engine.PRECISIONS)
    n_images: int
    paths_sha256: str           # of the sorted image list

    def metadata(self, images: str) -> dict:
        """The store's ``fastcam`` attributes for this run; ``images``: what the user
        passed, recorded but not checked."""
        from .._version import __version__

        return {"format": FORMAT, "fastcam_version": __version__,
                **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, "images": images}


#: keyword arguments of the methods that a run sets by its own arguments, not as options
RUN_ARGUMENTS = {"normalize": "--normalize", "precision": "--precision"}


def method_spec(method: str, options: Optional[dict], *, run_arguments: tuple = ("normalize",)
                ) -> tuple[str, type, dict]:
    """(canonical name, class, every keyword option with its effective value).
    ``run_arguments``: keywords that are not options here (set by the command's
    own arguments, :data:`RUN_ARGUMENTS`); naming one is an error that says which."""
    cls = METHODS.get(str(method).lower())
    if cls is None:
        raise UsageError(f"unknown method {method!r}; choose from {sorted(METHODS)}")
    canonical = next(k for k, v in METHODS.items() if v is cls)
    params = {n: p for n, p in inspect.signature(cls.__init__).parameters.items()
              if p.kind is inspect.Parameter.KEYWORD_ONLY and n not in run_arguments}
    options = dict(options or {})
    reserved = sorted(set(options) & set(run_arguments))
    if reserved:
        raise UsageError(f"{reserved[0]} is not a method option: use "
                         f"{RUN_ARGUMENTS.get(reserved[0], reserved[0])}")
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise UsageError(f"method {canonical!r} has no option(s) {unknown}; options: {sorted(params)}")
    full = {n: p.default for n, p in params.items() if p.default is not inspect.Parameter.empty}
    full.update(options)
    try:
        full = json.loads(json.dumps(full, sort_keys=True))
    except TypeError as e:
        raise UsageError(f"method options must be JSON values (numbers, strings, lists): {e}") from None
    return canonical, cls, full


def resolve_config(loaded: LoadedModel, images: ImageList, *, method: str, options: Optional[dict],
                   target: Any, size: int, dtype: str, normalize: Union[str, Normalize],
                   precision: str = "fp32") -> tuple[RunConfig, Optional[np.ndarray]]:
    """The config of a run of ``method`` on ``loaded`` over ``images``, and the
    per-image target classes (None: the predicted ones). The options are checked
    by building the explainer once; target classes against the model's outputs.
    ``precision`` is a field of its own, not an option (``options`` naming it
    is an error)."""
    name, cls, full_options = method_spec(method, options, run_arguments=tuple(RUN_ARGUMENTS))
    norm = resolve_normalize(normalize, loaded)
    build_explainer(cls, loaded.model, loaded.layer, norm, full_options, precision)
    targets, target_record = read_targets(target, images)
    if targets is not None:
        n_classes = count_classes(loaded, size)
        if int(targets.max()) >= n_classes:
            raise UsageError(f"--target: class {int(targets.max())} out of range for a model "
                             f"with {n_classes} classes")
    config = RunConfig(name, full_options, loaded.name, loaded.weights, loaded.layer, size, dtype,
                       target_record, norm, precision, len(images.paths), images.digest())
    return config, targets
