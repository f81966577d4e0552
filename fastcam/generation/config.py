"""What identifies a ``fastcam generate`` run: :class:`RunConfig`, the store's
checked metadata (:data:`fastcam.generation.store.CHECKED_KEYS`), resolved from
the arguments and the loaded model on rank 0."""
from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from ..errors import UsageError
from ..inputs import Normalize
from ..methods import METHODS
from ..models.loading import LoadedModel
from ..preflight import build_explainer, count_classes, resolve_normalize
from .decode import preprocessing_record
from .manifest import Manifest
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
    preprocess: dict            # how images became the input (fastcam.generation.decode)
    save: list                  # the arrays of maps kept: ["maps"] or ["maps", "low_res"]
    n_images: int               # rows: one per (image, target)
    paths_sha256: str           # of the rows' ids and targets (Manifest.digest)

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


#: what ``--save`` may keep besides the maps
SAVES = ("low-res",)


def resolve_config(loaded: LoadedModel, manifest: Manifest, target_record: Any, *, method: str,
                   options: Optional[dict], size: int, dtype: str, normalize: Union[str, Normalize],
                   precision: str = "fp32", preprocess: str = "crop", save: tuple = ()
                   ) -> tuple[RunConfig, Any]:
    """The config of a run of ``method`` on ``loaded`` over the manifest's rows,
    and the explainer (built once here, which checks the options). Target
    classes are checked against the model's outputs. ``precision`` is a field
    of its own, not an option (``options`` naming it is an error)."""
    name, cls, full_options = method_spec(method, options, run_arguments=tuple(RUN_ARGUMENTS))
    norm = resolve_normalize(normalize, loaded)
    cam = build_explainer(cls, loaded.model, loaded.layer, norm, full_options, precision)
    unknown = sorted(set(save) - set(SAVES))
    if unknown:
        raise UsageError(f"--save {unknown[0]!r}: choose from {list(SAVES)}")
    codes = manifest.targets
    if len(codes) and (int(codes.max()) >= 0 or int(codes.min()) < -1):
        n_classes = count_classes(loaded, size)
        if int(codes.max()) >= n_classes:
            raise UsageError(f"--target: class {int(codes.max())} out of range for a model "
                             f"with {n_classes} classes")
        if -1 - int(codes.min()) >= n_classes:
            raise UsageError(f"--target topk:{-int(codes.min())}: the model has {n_classes} classes")
    kept = ["maps"] + (["low_res"] if "low-res" in save else [])
    config = RunConfig(name, full_options, loaded.name, loaded.weights, loaded.layer, size, dtype,
                       target_record, norm, precision, preprocessing_record(preprocess, size), kept,
                       len(manifest), manifest.digest())
    return config, cam
