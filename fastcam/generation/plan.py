"""The work of a ``fastcam generate`` run: :class:`Plan`, made by rank 0 once the
store is open and sent to every rank."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .config import RunConfig
from .dataset import ImageList
from .fingerprint import fingerprints
from .store import SaliencyStore


@dataclass(frozen=True)
class Plan:
    """The config, the images and their target classes (None: predicted), the
    store's chunks still to compute (in order), how many images were done
    before this run, the fingerprint kind the store records (None: none), and
    the paths of computed images that changed since and the chunks whose maps
    are missing, both recomputed."""

    config: RunConfig
    images: ImageList
    targets: Optional[np.ndarray]
    pending: list[int]
    skipped: int
    fingerprint: Optional[str] = None
    changed: list = field(default_factory=list)
    missing: list = field(default_factory=list)

    @classmethod
    def make(cls, config: RunConfig, images: ImageList, targets: Optional[np.ndarray],
             store: SaliencyStore, retry_failed: bool = False) -> "Plan":
        """The plan for ``store``: its pending chunks (with ``retry_failed`` also
        those holding a failed image), the chunks holding an image whose
        fingerprint changed, and the done chunks whose maps are missing."""
        status = store.status()
        pending = set(store.pending_chunks(status, retry_failed=retry_failed))
        kind = store.fingerprint_kind
        changed: list[int] = []
        if kind is not None:
            computed = [i for i in range(store.n_images) if i // store.chunk_size not in pending]
            changed = store.changed_images(dict(zip(computed, fingerprints(images, computed, kind))), status)
        missing = store.missing_map_chunks(status)
        pending |= {i // store.chunk_size for i in changed} | set(missing)
        order = sorted(pending)
        todo = sum(len(store.chunk_range(c)) for c in order)
        return cls(config, images, targets, order, store.n_images - todo, kind,
                   [images.paths[i] for i in changed], missing)

    def chunks_of(self, rank: int, world: int) -> list[int]:
        """Rank ``rank`` of ``world`` computes pending chunks ``rank, rank+world, ...``."""
        return self.pending[rank::world]

    @property
    def n_pending(self) -> int:
        """Images still to compute."""
        return self.config.n_images - self.skipped
