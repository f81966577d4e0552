"""What a ``fastcam generate`` run did: :class:`GenerateSummary`."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class GenerateSummary:
    """What a run did (same on every rank)."""

    store: str
    n_images: int            # images in the store
    done: int                # with a map, in the whole store
    failed: int              # recorded as failed, in the whole store
    pending: int             # not yet computed (0 when the store is complete)
    computed: int            # images this run processed (all ranks)
    computed_failed: int     # of which failed
    skipped: int             # images already done before this run
    seconds: float           # wall time of the compute loop (all ranks, to the final barrier)
    world_size: int
    failures: list = field(default_factory=list)   # up to 10 (path, error) from the store

    @property
    def images_per_s(self) -> float:
        return self.computed / self.seconds if self.seconds > 0 else float("nan")

    def format(self) -> str:
        lines = [f"fastcam generate: {self.computed} image(s) in {self.seconds:.1f} s "
                 f"({self.images_per_s:.1f} images/s) on {self.world_size} process(es)",
                 f"  this run: {self.computed - self.computed_failed} done, {self.computed_failed} "
                 f"failed; {self.skipped} already in the store (skipped)",
                 f"  store {self.store}: {self.n_images} images, {self.done} done, {self.failed} failed, "
                 f"{self.pending} pending" + (" (complete)" if self.pending == 0 else "")]
        for path, err in self.failures[:5]:
            lines.append(f"  failed: {path}: {err}")
        if self.failed > min(5, len(self.failures)):
            lines.append(f"  ... {self.failed - min(5, len(self.failures))} more failed "
                         "(the store's status/error arrays list them)")
        return "\n".join(lines)
