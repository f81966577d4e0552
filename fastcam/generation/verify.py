"""``fastcam generate --verify``: :func:`verify_store` checks a finished store
against what it claims, and :class:`VerifyReport` says what it found."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..errors import UsageError
from .fingerprint import current_fingerprints
from .manifest import ImagesSpec, Manifest, list_inputs, make_manifest, redact
from .store import IMPLIED, SaliencyStore, _zarr, zarr_options


@dataclass
class VerifyReport:
    """What :func:`verify_store` found; ``ok`` when there is no problem."""

    store: str
    n_images: int
    done: int
    failed: int
    pending: int
    precision: str = "fp32"                               # how the store's maps were computed
    missing_chunks: list = field(default_factory=list)   # done chunks without their maps
    changed: list = field(default_factory=list)          # paths whose fingerprint differs
    notes: list = field(default_factory=list)            # what could not be checked
    problems: list = field(default_factory=list)         # other problems, one line each
    differs: list = field(default_factory=list)          # the store is not the run asked for

    @property
    def ok(self) -> bool:
        return not (self.pending or self.missing_chunks or self.changed or self.problems or self.differs)

    def format(self) -> str:
        lines = [f"fastcam generate --verify {self.store}: {self.n_images} images, {self.done} done, "
                 f"{self.failed} failed, {self.pending} pending; precision {self.precision}"]
        if self.missing_chunks:
            lines.append(f"  {len(self.missing_chunks)} chunk(s) marked done have no maps: "
                         f"{self.missing_chunks[:10]}")
        if self.changed:
            lines.append(f"  {len(self.changed)} image(s) changed since computed: "
                         + ", ".join(self.changed[:10]) + (" ..." if len(self.changed) > 10 else ""))
        lines += [f"  {p}" for p in self.problems + self.differs] + [f"  note: {n}" for n in self.notes]
        if self.ok:
            lines.append("  OK")
        elif self.pending or self.missing_chunks or self.changed or self.problems:
            lines.append("  PROBLEMS: run the same fastcam generate command again to recompute them")
        else:
            lines.append("  PROBLEMS: the store was made by another run (a resume with these "
                         "arguments is refused)")
        return "\n".join(lines)


def verify_store(location: str, images: Optional[ImagesSpec] = None,
                 storage_options: Optional[dict] = None, precision: Optional[str] = None,
                 target: Any = None) -> VerifyReport:
    """Check every chunk marked done has its ``maps`` chunk in the store and,
    given ``images``, that the image list is the store's and every computed
    image's fingerprint is unchanged; given ``precision``, that the store's maps
    were computed in it; given ``target`` too (as :func:`fastcam.generate` takes
    it), that the store's rows are the (image, target) rows it expands to, in
    order. A location that is not a readable fastcam store raises
    :class:`UsageError`."""
    location = os.fspath(location)
    try:
        group = _zarr().open_group(location, mode="r", storage_options=zarr_options(location, storage_options))
        store = SaliencyStore(group, location)
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"--out {location!r} is not a readable fastcam store "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})") from None
    status = store.status()
    counts = store.counts(status)
    stored_precision = store.meta.get("precision", IMPLIED["precision"])
    report = VerifyReport(location, counts.n_images, counts.done, counts.failed, counts.pending,
                          stored_precision, missing_chunks=store.missing_map_chunks(status))
    if precision is not None and precision != stored_precision:
        report.differs.append(f"the store's maps were computed in {stored_precision}, not {precision}")
    if images is None:
        report.notes.append("no --images given: fingerprints not checked")
        return report
    # the store's rows are (image, target); the listing is of images: compare the images
    ids, uris, prints, _source, _labels = list_inputs(images, storage_options=storage_options,
                                                      image_column=store.meta.get("image_column", "image"))
    stored = store.read_manifest() if "manifest" in store.group else None
    if stored is None or set(ids) != set(stored.ids):
        report.problems.append(f"the image list of {redact(images)} differs from the store's (other files or paths)")
        return report
    if target is not None:
        wanted, record = make_manifest(images, target, storage_options=storage_options,
                                       image_column=store.meta.get("image_column", "image"))
        same_rows = list(wanted.ids) == list(stored.ids) and np.array_equal(wanted.targets, stored.targets)
        if not same_rows or json.dumps(record, sort_keys=True) != json.dumps(store.meta.get("target"), sort_keys=True):
            report.differs.append(f"--target {redact(str(target))} gives {len(wanted)} (image, target) rows "
                                  f"that are not the store's {len(stored)} (made with --target "
                                  f"{store.meta.get('target')!r})")
    else:
        report.notes.append("no --target given: the (image, target) rows not checked")
    if store.fingerprint_kind is None:
        report.notes.append("the store was made before fastcam recorded fingerprints: changed images "
                            "cannot be detected")
        return report
    where = {i: k for k, i in enumerate(ids)}
    rows = Manifest(stored.ids, [uris[where[i]] for i in stored.ids], [prints[where[i]] or "" for i in stored.ids],
                    stored.targets, stored.source)
    computed = [i for i in range(store.n_images) if status[i] != 0]
    current = current_fingerprints(rows, computed, store.fingerprint_kind, storage_options)
    report.changed = sorted({rows.ids[i] for i in store.changed_images(current, status)})
    return report
