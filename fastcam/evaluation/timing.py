"""Timing one call the way a throughput benchmark should: warm-up calls first (not
timed: kernels compiled, caches filled, allocator grown), then ``repeats`` timed
calls, each bracketed by ``torch.cuda.synchronize`` when the work runs on a GPU
(CUDA calls return before the GPU finishes), reported as the median and the
interquartile range, with the allocator's peak memory over the timed calls on CUDA."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch


@dataclass
class Timing:
    """The timed calls of one function on a batch of ``batch`` images."""
    seconds: list[float]
    batch: int
    #: the CUDA allocator's peak over the timed calls (MiB); None on a CPU, where
    #: torch has no per-call peak
    peak_memory_mib: Optional[float]

    @property
    def median_ms_per_image(self) -> float:
        return statistics.median(s * 1e3 / self.batch for s in self.seconds)

    @property
    def iqr_ms_per_image(self) -> float:
        """The interquartile range: 75th minus 25th percentile (inclusive method; 0 for one call)."""
        if len(self.seconds) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles([s * 1e3 / self.batch for s in self.seconds], n=4,
                                         method="inclusive")
        return q3 - q1

    @property
    def images_per_second(self) -> float:
        return 1e3 / self.median_ms_per_image

    def as_dict(self) -> dict[str, Any]:
        return {"images_per_s": self.images_per_second,
                "ms_per_image": {"median": self.median_ms_per_image, "iqr": self.iqr_ms_per_image},
                "peak_memory_mib": self.peak_memory_mib, "calls": len(self.seconds),
                "seconds": list(self.seconds)}


def time_calls(fn: Callable[[], Any], *, batch: int, device: torch.device, repeats: int = 5,
               warmup: int = 1) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed (wall clock,
    ``time.perf_counter``); on CUDA each timed call is synchronised before and after,
    and the allocator's peak is reset after the warm-up."""
    if repeats < 1 or warmup < 0 or batch < 1:
        raise ValueError(f"repeats >= 1, warmup >= 0 and batch >= 1 expected, got {repeats}, {warmup}, {batch}")
    cuda = device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        seconds.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if cuda else None
    return Timing(seconds, batch, peak)
