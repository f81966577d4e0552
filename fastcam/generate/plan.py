"""The work of a ``fastcam generate`` run: :class:`Plan`, made by rank 0 once the
store is open and sent to every rank."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .config import RunConfig
from .dataset import ImageList
from .store import SaliencyStore


@dataclass(frozen=True)
class Plan:
    """The config, the images and their target classes (None: predicted), the
    store's chunks still to compute (in order), and how many images were done
    before this run."""

    config: RunConfig
    images: ImageList
    targets: Optional[np.ndarray]
    pending: list[int]
    skipped: int

    @classmethod
    def make(cls, config: RunConfig, images: ImageList, targets: Optional[np.ndarray],
             store: SaliencyStore, retry_failed: bool = False) -> "Plan":
        """The plan for ``store``: its pending chunks (with ``retry_failed`` also
        those holding a failed image)."""
        pending = store.pending_chunks(retry_failed=retry_failed)
        todo = sum(len(store.chunk_range(c)) for c in pending)
        return cls(config, images, targets, pending, store.n_images - todo)

    def chunks_of(self, rank: int, world: int) -> list[int]:
        """Rank ``rank`` of ``world`` computes pending chunks ``rank, rank+world, ...``."""
        return self.pending[rank::world]

    @property
    def n_pending(self) -> int:
        """Images still to compute."""
        return self.config.n_images - self.skipped
