"""Per-image results of an evaluation, committed part by part as they finish, so
that a run killed at any moment resumes where it stopped (on this machine or
another that sees the folder).

A part is one method on one chunk of images (``batch_size`` of them): the
method's maps and every metric on them. Its results are two files in
``OUT/eval_parts/<method>/``: ``<lo>-<hi>.json`` (the seconds the method and
each metric took) and then ``<lo>-<hi>.csv`` (one row per image: ``image``,
``method`` and one column per metric, values as :func:`repr` writes floats so
they read back bit for bit). Each is written to a temporary file and renamed
into place (:func:`os.replace`, atomic), the CSV last: a part is committed
exactly when its CSV exists. The CSVs are a table pandas reads while the run
goes on: ``pd.concat(map(pd.read_csv, glob("OUT/eval_parts/*/*.csv")))``.

``OUT/eval_parts/manifest.json`` records what the results depend on (images,
targets, model, preprocessing, methods, their options, metrics, chunking, ...);
resuming with anything else is refused, naming the difference.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import UsageError

#: the folder of the parts, inside the output folder
PARTS_DIR = "eval_parts"


@dataclass
class Part:
    """One method's results on images ``lo:hi``: per-image values by metric (as
    the table reports them) and the seconds spent."""

    lo: int
    hi: int
    method: str
    names: list[str]
    values: dict[str, np.ndarray]
    method_seconds: float
    metric_seconds: dict[str, float]


def canonical(obj) -> object:
    """``obj`` as JSON reads it back (tuples become lists, keys sorted)."""
    return json.loads(json.dumps(obj, sort_keys=True))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class PartStore:
    """The committed parts of one evaluation in ``out/eval_parts`` (see the module doc)."""

    def __init__(self, folder: Path, manifest: dict, metrics: list[str]):
        self.folder = folder
        self.manifest = manifest
        self.metrics = list(metrics)

    @classmethod
    def open(cls, out: str | os.PathLike, manifest: dict, metrics: list[str], *, total: int,
             resume: bool) -> "PartStore":
        """The store for a run described by ``manifest`` (JSON-able) with ``total`` parts.

        ``resume=True`` keeps the parts of a run with the same manifest (none yet:
        a fresh start) and refuses a different one. ``resume=False`` starts afresh,
        removing earlier parts, unless they are an unfinished run: that is refused,
        so that hours of results are never thrown away by accident."""
        folder = Path(out) / PARTS_DIR
        manifest = canonical({**manifest, "parts": int(total)})
        path = folder / "manifest.json"
        if path.exists():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise UsageError(f"{path}: unreadable ({e}); remove {folder} to start afresh") from None
            store = cls(folder, old, metrics)
            done = store.count()
            for stale in folder.glob("*/.*.tmp"):          # a write cut short by a kill
                stale.unlink(missing_ok=True)
            if resume:
                diff = sorted(k for k in set(old) | set(manifest) if old.get(k) != manifest.get(k))
                if diff:
                    raise UsageError(f"--resume: {folder} holds an evaluation with other settings "
                                     f"({', '.join(diff)} differ); run with those settings or use another --out")
                return store
            if done < int(old.get("parts", 0)):
                raise UsageError(f"{folder} holds an unfinished evaluation ({done} of {old.get('parts')} "
                                 "parts): pass --resume to continue it, or use another --out")
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        return cls(folder, manifest, metrics)

    def _paths(self, lo: int, hi: int, method: str) -> tuple[Path, Path]:
        d = self.folder / method
        return d / f"{lo:07d}-{hi:07d}.csv", d / f"{lo:07d}-{hi:07d}.json"

    def count(self) -> int:
        """How many parts are committed."""
        return sum(1 for _ in self.folder.glob("*/*.csv"))

    def load(self, lo: int, hi: int, method: str, names: list[str]) -> Optional[Part]:
        """The committed part, or None; a part whose images are not ``names`` is an error."""
        table, timing = self._paths(lo, hi, method)
        if not table.exists():
            return None
        with open(table, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if [r["image"] for r in rows] != list(names) or any(r["method"] != method for r in rows):
            raise UsageError(f"{table}: its images are not those of this run's chunk {lo}:{hi}")
        missing = [k for k in self.metrics if rows and k not in rows[0]]
        if missing:
            raise UsageError(f"{table}: no column for metric(s) {missing}")
        t = json.loads(timing.read_text(encoding="utf-8"))
        values = {k: np.array([float(r[k]) for r in rows], dtype=np.float64) for k in self.metrics}
        return Part(lo, hi, method, list(names), values, float(t["method_seconds"]),
                    {k: float(v) for k, v in t["metric_seconds"].items()})

    def commit(self, part: Part) -> None:
        """Write the part: timings first, then the CSV that marks it committed."""
        table, timing = self._paths(part.lo, part.hi, part.method)
        table.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(timing, json.dumps({"method_seconds": part.method_seconds,
                                          "metric_seconds": part.metric_seconds}) + "\n")
        lines = [",".join(["image", "method", *self.metrics])]
        for i, name in enumerate(part.names):
            row = [name, part.method, *(repr(float(part.values[k][i])) for k in self.metrics)]
            lines.append(",".join(_csv_field(v) for v in row))
        _write_atomic(table, "\n".join(lines) + "\n")


def _csv_field(v: str) -> str:
    return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n\r') else v
