"""``fastcam eval --metrics sanity``: the randomisation sanity check
(:func:`fastcam.metrics.randomisation_sanity`) of every method, written as
``eval_sanity.csv`` (per method and step: the layers re-initialised and the
mean Spearman / SSIM over the images) and ``eval_sanity.png`` (similarity
against the randomised depth, one line per method)."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Optional, Sequence

from torch import Tensor, nn

from ..inputs import Normalize
from ..metrics.sanity import SanityResult, randomisation_sanity


def run_sanity(model: nn.Module, x: Tensor, targets: Sequence[int], methods: Sequence[str], *,
               layer: Optional[str], normalize: Normalize, steps: int, layers: str,
               method_options: Optional[dict[str, dict]] = None) -> dict[str, SanityResult]:
    """One :func:`randomisation_sanity` per method, ``steps`` groups from the top."""
    return {m: randomisation_sanity(m, model, x, list(targets), layers=layers, steps=steps,
                                    target_layers=layer, normalize=normalize,
                                    **(method_options or {}).get(m, {}))
            for m in methods}


def write_sanity(results: dict[str, SanityResult], out: str) -> dict[str, Path]:
    """``eval_sanity.csv`` and ``eval_sanity.png`` in ``out``."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out_dir / "eval_sanity.csv", out_dir / "eval_sanity.png"
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["method", "mode", "step", "randomised", "spearman", "ssim", "n_spearman"])
        for m, r in results.items():
            s, q = r.mean("spearman"), r.mean("ssim")
            defined = (~r.spearman.isnan()).sum(1)
            for t, group in enumerate(r.randomised):
                w.writerow([m, r.mode, t, " ".join(group), f"{float(s[t]):.6g}", f"{float(q[t]):.6g}",
                            int(defined[t])])
    _plot(results, png_path)
    return {"sanity_csv": csv_path, "sanity_png": png_path}


def _plot(results: dict[str, SanityResult], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=120)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharex=True)
    mode = next(iter(results.values())).mode if results else "cascade"
    for ax, which, title in zip(axes, ("spearman", "ssim"), ("Spearman rank correlation", "SSIM")):
        for m, r in results.items():
            v = r.mean(which).tolist()
            ax.plot(range(len(v)), [float("nan") if math.isnan(a) else a for a in v], marker="o", label=m)
        ax.set_title(f"{title} with the trained model's maps")
        ax.set_xlabel(f"randomised depth ({mode}: layer groups from the top)")
        ax.set_ylim(-0.2, 1.05)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean over the images")
    axes[1].legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
