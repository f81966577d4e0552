"""What a ``fastcam generate`` run did: :class:`GenerateSummary`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..errors import UsageError


def parse_max_failed(max_failed: Union[int, str, None], n_rows: int) -> int:
    """``--max-failed``: N rows or ``P%`` of ``n_rows`` (rounded down); None: 0."""
    if max_failed is None:
        return 0
    text = str(max_failed).strip()
    try:
        if text.endswith("%"):
            p = float(text[:-1])
            if not 0 <= p <= 100:
                raise ValueError
            return int(p / 100 * n_rows)
        n = int(text)
        if n < 0:
            raise ValueError
        return n
    except ValueError:
        raise UsageError(f"--max-failed {max_failed!r}: give N (>= 0) or P% (0 to 100)") from None


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
    reasons: dict = field(default_factory=dict)     # error type -> failed rows, whole store
    own_pending: int = 0     # rows still pending among the chunks this process was given (--shard)

    def allowed_failures(self, max_failed: Union[int, str, None]) -> int:
        """How many failed rows ``max_failed`` allows: N, or ``"P%"`` of the rows."""
        return parse_max_failed(max_failed, self.n_images)

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
        if self.reasons:
            lines.append("  failed by reason: " + ", ".join(f"{k}: {v}" for k, v in
                                                          sorted(self.reasons.items(), key=lambda kv: -kv[1])))
        for path, err in self.failures[:5]:
            lines.append(f"  failed: {path}: {err}")
        if self.failed > min(5, len(self.failures)):
            lines.append(f"  ... {self.failed - min(5, len(self.failures))} more failed "
                         "(the store's status/error arrays list them)")
        return "\n".join(lines)
