"""Papers' claims judged from paired per-image differences.

A claim says that ``method`` is better than ``rival`` on ``metric`` (lower AD,
higher AG, ...). Both ran on the same images, so the evidence is the per-image
difference ``d_i = method_i − rival_i`` over the images where both have a value,
and its 95% Student-t interval ``mean(d) ± t_{0.975, n−1} · s_d / √n``
(:func:`fastcam.evaluation.tables.t_interval`): pairing removes the spread
between images, which is what makes a difference of a few points decidable on
hundreds of images when the two methods' own intervals overlap.

Verdict, for "better" = higher (or lower) values:

* **holds**: the whole interval is on the better side of 0;
* **does not hold**: the whole interval is on the worse side of 0;
* **undecided**: the interval contains 0, or has no width (n < 2).

"No worse than" claims are judged by the same rule: an interval around 0 does not
show "no worse" without an equivalence margin, so it stays undecided.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from .runner import METRICS, EvalResult
from .tables import t_interval

HOLDS, DOES_NOT_HOLD, UNDECIDED = "holds", "does not hold", "undecided"
Verdict = Literal["holds", "does not hold", "undecided"]


@dataclass(frozen=True)
class PairedInterval:
    """The mean per-image difference and its interval (NaN bounds when n < 2)."""

    n: int
    mean: float
    low: float
    high: float


def paired_interval(values: np.ndarray, rival: np.ndarray, level: float = 0.95) -> PairedInterval:
    """Student-t interval of ``values − rival`` per image (the same images, in the
    same order), over the images where both are finite."""
    a, b = np.asarray(values, dtype=np.float64), np.asarray(rival, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be two 1-D arrays of one length, got {a.shape} and {b.shape}")
    both = np.isfinite(a) & np.isfinite(b)
    n, mean, half = t_interval(a[both] - b[both], level)
    return PairedInterval(n, mean, mean - half, mean + half)


def verdict(interval: PairedInterval, higher_is_better: bool) -> Verdict:
    """The claim "the method is better than the rival" from the interval of
    method − rival (see the module doc)."""
    low, high = interval.low, interval.high
    if math.isnan(low) or math.isnan(high):
        return UNDECIDED
    if not higher_is_better:
        low, high = -high, -low
    if low > 0:
        return HOLDS
    if high < 0:
        return DOES_NOT_HOLD
    return UNDECIDED


@dataclass(frozen=True)
class Claim:
    """``method`` is better than each of ``rivals`` on ``metric`` (the sense is
    the metric's: :data:`fastcam.evaluation.METRICS`); ``source`` names the paper
    and ``published`` its numbers (metric values by method), shown beside ours."""

    method: str
    rivals: tuple[str, ...]
    metric: str
    source: str = ""
    published: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ClaimResult:
    claim: Claim
    rival: str
    interval: PairedInterval
    verdict: Verdict


def applicable(claims: Sequence[Claim], methods: Sequence[str], metrics: Sequence[str]) -> list[Claim]:
    """The claims a run of ``methods`` × ``metrics`` can judge, each cut to the
    rivals it ran (claims with none left are dropped)."""
    out = []
    for c in claims:
        rivals = tuple(r for r in c.rivals if r in methods)
        if c.method in methods and c.metric in metrics and rivals:
            out.append(Claim(c.method, rivals, c.metric, c.source, c.published))
    return out


def judge(result: EvalResult, claims: Sequence[Claim], level: float = 0.95) -> list[ClaimResult]:
    """Each claim against each of its rivals, on ``result``'s per-image values."""
    out = []
    for c in claims:
        if c.metric not in METRICS:
            raise ValueError(f"claim on unknown metric {c.metric!r}")
        for r in c.rivals:
            missing = [m for m in (c.method, r) if (m, c.metric) not in result.values]
            if missing:
                raise ValueError(f"claim {c.method} vs {r} on {c.metric}: the run has no {missing}")
            iv = paired_interval(result.values[(c.method, c.metric)], result.values[(r, c.metric)], level)
            out.append(ClaimResult(c, r, iv, verdict(iv, METRICS[c.metric].higher_is_better)))
    return out


def _num(v: float) -> str:
    return "–" if math.isnan(v) else f"{v:+.1f}".replace("-", "−")


def claims_table(results: Sequence[ClaimResult]) -> str:
    """Markdown: per claim and rival, the paired difference with its interval,
    the verdict and the published numbers (other models, other images)."""
    lines = ["| Claim | Paired difference [95% interval] | n | Verdict | Published |",
             "|---|---:|---:|---|---|"]
    for r in results:
        c, iv = r.claim, r.interval
        sense = "↑" if METRICS[c.metric].higher_is_better else "↓"
        published = ", ".join(f"{m} {v:g}" for m, v in c.published if m in (c.method, r.rival))
        lines.append(f"| {c.method} better than {r.rival} on {METRICS[c.metric].title} {sense} | "
                     f"{_num(iv.mean)} [{_num(iv.low)}, {_num(iv.high)}] | {iv.n} | {r.verdict} | "
                     f"{published + (' (' + c.source + ')' if c.source else '')} |")
    return "\n".join(lines) + "\n"
