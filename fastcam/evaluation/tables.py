"""The outputs of ``fastcam eval``: a methods × metrics table (Markdown and CSV)
of means with 95% Student-t intervals and each method's seconds per image, a
per-image CSV, and the timings as JSON.

Interval: ``mean ± t_{0.975, n−1} · s / √n`` (s the sample standard deviation,
n the images with a value). With few images (n = 8 here) the t quantile
(2.365) rather than the normal one (1.96) is what makes it a 95% interval for a
roughly normal mean; for the 0/1 metrics (AI, pointing game) it is the usual
approximation. n = 1 gives no interval.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Optional

import numpy as np

from ..data import IMAGENET_CLASSES
from ..inputs import Normalize
from .runner import METRICS, EvalResult

#: the output files, in ``--out``
FILES = {"table_md": "eval_table.md", "table_csv": "eval_table.csv",
         "per_image": "eval_per_image.csv", "timings": "eval_timings.json",
         "command": "eval_command.txt"}


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[int, float, float]:
    """(n, mean, half-width) over the finite values; half-width NaN when n < 2."""
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return 0, math.nan, math.nan
    mean = float(v.mean())
    if n < 2:
        return n, mean, math.nan
    half = float(t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    return n, mean, half


def summary(result: EvalResult) -> dict[tuple[str, str], tuple[int, float, float]]:
    return {key: t_interval(v) for key, v in result.values.items()}


def _cell(n: int, mean: float, half: float) -> str:
    if n == 0:
        return "–"
    return f"{mean:.1f}" if math.isnan(half) else f"{mean:.1f} ± {half:.1f}"


def describe_normalize(normalize: Normalize) -> str:
    """One line for the table's header."""
    if normalize is None:
        return "none (the model sees [0, 1] pixels; masks multiply them)"
    mean, std = normalize
    fmt = lambda v: "(" + ", ".join(f"{x:g}" for x in v) + ")"   # noqa: E731
    return f"masks multiply [0, 1] pixels before (x - mean)/std, mean={fmt(mean)}, std={fmt(std)}"


def markdown_table(result: EvalResult, header: Optional[str] = None) -> str:
    """Rows = methods, columns = metrics (mean ± 95% half-width) + s/img."""
    s = summary(result)
    cols = [f"{METRICS[k].title} {'↑' if METRICS[k].higher_is_better else '↓'}" for k in result.metrics]
    lines = []
    if header:
        lines += [header, ""]
    lines.append("| Method | " + " | ".join(cols) + " | s/img |")
    lines.append("|---|" + "---:|" * (len(cols) + 1))
    for m in result.methods:
        cells = [_cell(*s[(m, k)]) for k in result.metrics]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {result.seconds_per_image(m):.3f} |")
    ns = sorted({s[(m, k)][0] for m in result.methods for k in result.metrics})
    nats = " (complexity: nats)" if "complexity" in result.metrics else ""
    lines += ["", f"Values ×100{nats}, mean ± half-width of the 95% Student-t interval over the images "
                  f"(n = {', '.join(map(str, ns))}); s/img: the method's seconds per image."]
    return "\n".join(lines) + "\n"


def write_outputs(result: EvalResult, out: str, *, header: str, command: str,
                  extra: Optional[dict] = None) -> dict[str, Path]:
    """Write the five files of :data:`FILES` into ``out``; returns their paths."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    paths = {k: d / v for k, v in FILES.items()}
    paths["table_md"].write_text(markdown_table(result, header), encoding="utf-8")
    s = summary(result)
    with open(paths["table_csv"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["method", "metric", "n", "mean", "ci95_low", "ci95_high", "higher_is_better"])
        for m in result.methods:
            for k in result.metrics:
                n, mean, half = s[(m, k)]
                w.writerow([m, k, n, f"{mean:.6g}", f"{mean - half:.6g}", f"{mean + half:.6g}",
                            int(METRICS[k].higher_is_better)])
            w.writerow([m, "seconds_per_image", len(result.names), f"{result.seconds_per_image(m):.6g}",
                        "", "", 0])
    with open(paths["per_image"], "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "target", "target_name", "predicted", "predicted_name", "method",
                    *result.metrics])
        for i, name in enumerate(result.names):
            t, p = result.targets[i], result.predicted[i]
            for m in result.methods:
                w.writerow([name, t, class_name(t), p, class_name(p), m,
                            *(f"{result.values[(m, k)][i]:.6g}" for k in result.metrics)])
    timings = {
        "images": len(result.names),
        "total_seconds": result.total_seconds,
        "method_seconds": result.method_seconds,
        "metric_seconds": result.metric_totals(),
        "method_metric_seconds": {f"{m}/{k}": v for (m, k), v in result.metric_seconds.items()},
        "failed": [{"image": n, "reason": r} for n, r in result.failed],
        **(extra or {}),
    }
    paths["timings"].write_text(json.dumps(timings, indent=2) + "\n", encoding="utf-8")
    paths["command"].write_text(command + "\n", encoding="utf-8")
    return paths


def read_table_csv(path: str) -> dict[tuple[str, str], dict]:
    """The CSV table back: (method, metric) -> {n, mean, ci95_low, ci95_high}."""
    out = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[(row["method"], row["metric"])] = {
                "n": int(row["n"]), "mean": float(row["mean"]),
                "ci95_low": float(row["ci95_low"]) if row["ci95_low"] else math.nan,
                "ci95_high": float(row["ci95_high"]) if row["ci95_high"] else math.nan}
    return out


def class_name(c: int, unknown: str = "{}") -> str:
    """The ImageNet name of class c, else ``unknown`` formatted with c."""
    return IMAGENET_CLASSES[c] if 0 <= c < len(IMAGENET_CLASSES) else unknown.format(c)
