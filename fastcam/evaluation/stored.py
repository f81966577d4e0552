"""Maps a ``fastcam generate`` run stored, read back for ``fastcam eval --maps``.

A store holds one method's maps of one model (:mod:`fastcam.generation.store`).
:func:`open_stored` reads its attributes; :meth:`StoredMaps.check` lists what
differs from the evaluation (model and weights, target layer, input size,
preprocessing, normalisation: anything else is refused, since the metrics would
then score maps of other inputs); :meth:`StoredMaps.select` finds, for each
image evaluated and its target class, the store row that explains that class
of that image (a missing one is refused too); :meth:`StoredMaps.source` is what
:func:`fastcam.evaluation.evaluate` calls for a chunk's maps.

Which maps: where the store kept the maps before upsampling (``--save
low-res``, ``ReLU(Σ_k w_k A_k)`` at the layer's resolution), they are brought to
the input size as the method does it with the store's options
(:meth:`~fastcam.methods.base.BaseCAM.maps_from_low_res`: ``minmax(upsample_bilinear(low_res))``
for most, ADVISE's bicubic), in float32; else the stored maps. Stored
float16 maps have about 2,000 distinct values in [0, 1], so thousands of
pixels tie: the metrics that rank pixels (:data:`RANKING_METRICS`) are refused
on them, the others read them as float32.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import UsageError
from .parts import canonical

#: metrics whose value depends on the order of the map's pixels (ties matter)
RANKING_METRICS = ("insertion", "deletion", "road_morf", "road_lerf", "pointing", "relevance_rank_accuracy")


def _image_key(uri: str) -> str:
    """How a store row and an evaluated image are matched: the real path of a local
    file, else the URI as recorded."""
    path = uri[len("file://"):] if uri.startswith("file://") else uri
    return os.path.realpath(path) if "://" not in path else uri


@dataclass
class StoredMaps:
    """One store, opened for reading: its ``fastcam`` attributes and arrays."""

    location: str
    meta: dict
    group: Any
    rows: Optional[np.ndarray] = None       # store row of each evaluated image (select)
    seconds: Optional[np.ndarray] = None    # per evaluated image: what computing its map took

    @property
    def method(self) -> str:
        return str(self.meta["method"])

    @property
    def kind(self) -> str:
        """``"low_res"`` (reconstructed) or the stored maps' dtype."""
        return "low_res" if "low_res" in self.meta.get("save", []) else str(self.meta["dtype"])

    def describe(self) -> str:
        how = ("low-res maps upsampled" if self.kind == "low_res" else f"{self.kind} maps")
        return f"{self.method} from {self.location} ({how}, computed in {self.meta.get('precision', 'fp32')})"

    def check(self, *, model: str, weights: Any, layer: str, size: int, preprocess: dict,
              normalize: Any, metrics: Sequence[str]) -> None:
        """A :class:`UsageError` naming every setting in which the store differs
        from the evaluation, or a ranking metric on float16 maps."""
        wanted = {"model": model, "layer": layer, "size": int(size), "preprocess": preprocess,
                  "normalize": normalize}
        diff = [f"{k}: the store has {canonical(self.meta.get(k))!r}, this evaluation {canonical(v)!r}"
                for k, v in wanted.items() if canonical(self.meta.get(k)) != canonical(v)]
        stored_w = self.meta.get("weights")
        if _weights_key(stored_w) != _weights_key(weights):
            diff.append(f"weights: the store has {stored_w!r}, this evaluation {weights!r}")
        if diff:
            raise UsageError(f"--maps {self.location}: made with other settings than this evaluation; "
                             + "; ".join(diff))
        ranking = [k for k in metrics if k in RANKING_METRICS]
        if self.kind == "float16" and ranking:
            raise UsageError(f"--maps {self.location}: float16 maps tie in the pixel ranking that "
                             f"{ranking} use; generate with --dtype float32 or --save low-res")

    def select(self, paths: Sequence[str], targets: Sequence[int]) -> None:
        """Find the row explaining ``targets[i]`` of the image at ``paths[i]`` for
        every image; a :class:`UsageError` when some have none (done)."""
        g = self.group
        uris = [str(v) for v in g["manifest/uri"][:]]
        status = np.asarray(g["status"][:])
        explained = np.asarray(g["target"][:])
        index: dict[tuple[str, int], int] = {}
        for r, (uri, t, s) in enumerate(zip(uris, explained, status)):
            if s == 1:
                index.setdefault((_image_key(uri), int(t)), r)
        rows, missing = [], []
        for p, t in zip(paths, targets, strict=True):
            r = index.get((_image_key(p), int(t)))
            (missing if r is None else rows).append((p, int(t)) if r is None else r)
        if missing:
            p, t = missing[0]
            raise UsageError(f"--maps {self.location}: no map of {len(missing)} of the {len(paths)} "
                             f"image(s) for their target class, e.g. {os.path.basename(p)} class {t} "
                             "(generate them with the same images and --target as this evaluation)")
        self.rows = np.asarray(rows, dtype=np.int64)
        self.seconds = self._row_seconds(self.rows)

    def _row_seconds(self, rows: np.ndarray) -> np.ndarray:
        """Each row's ``seconds`` from the per-chunk tables (NaN without pyarrow or a table)."""
        out = np.full(len(rows), np.nan)
        try:
            import pyarrow.parquet as pq
        except ImportError:
            return out
        from ..generation.store import table_key

        chunk = int(self.group["status"].chunks[0])
        by_row: dict[int, float] = {}
        for c in sorted({int(r) // chunk for r in rows}):
            path = os.path.join(self.location, table_key(c))
            if not os.path.exists(path):
                continue
            table = pq.read_table(path, columns=["row", "seconds"]).to_pydict()
            by_row.update(zip(table["row"], table["seconds"]))
        return np.asarray([by_row.get(int(r), np.nan) for r in rows], dtype=np.float64)

    def source(self, lo: int, hi: int) -> tuple[Tensor, float]:
        """The float32 maps (hi − lo, S, S) of evaluated images lo:hi and the seconds
        computing them took (the stored per-row seconds; NaN where unknown)."""
        from ..methods import METHODS

        if self.rows is None:
            raise RuntimeError("select() first")
        rows = self.rows[lo:hi]
        size = int(self.meta["size"])
        if self.kind == "low_res":
            low = torch.from_numpy(np.asarray(self.group["low_res"].get_orthogonal_selection(
                (rows, slice(None), slice(None))), dtype=np.float32))
            maps = METHODS[self.method].maps_from_low_res(low, (size, size), self.meta.get("options"))
        else:
            maps = torch.from_numpy(np.asarray(self.group["maps"].get_orthogonal_selection(
                (rows, slice(None), slice(None))), dtype=np.float32))
        if not bool(torch.isfinite(maps).all()):
            raise UsageError(f"--maps {self.location}: non-finite values in the maps of rows {rows.tolist()}")
        return maps, float(np.sum(self.seconds[lo:hi]))


def _weights_key(record: Any) -> Any:
    """What identifies weights: the sha256 where recorded, else the record itself."""
    if isinstance(record, dict) and record.get("sha256"):
        return record["sha256"]
    return canonical(record)


def open_stored(location: str, method: Optional[str] = None) -> StoredMaps:
    """The store at ``location``; ``method``: the name given with it (``METHOD=STORE``),
    which must be the store's."""
    from ..generation.store import _zarr

    if not os.path.exists(location):
        raise UsageError(f"--maps {location!r}: no such store")
    try:
        group = _zarr().open_group(location, mode="r")
        meta = dict(group.attrs)["fastcam"]
    except (KeyError, ValueError, OSError, FileNotFoundError) as e:
        raise UsageError(f"--maps {location!r}: not a fastcam generate store ({type(e).__name__}: {e})") from None
    stored = StoredMaps(location, meta, group)
    if method is not None and method.lower() != stored.method:
        raise UsageError(f"--maps {method}={location}: the store holds {stored.method} maps")
    return stored
