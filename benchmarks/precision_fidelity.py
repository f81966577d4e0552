"""bf16 against fp32, for every method, on the bundled EfficientNet-Lite0 and the
8 bundled photos (ground-truth classes): per-map Pearson correlation (worst, mean)
and the change in the mean of AD, AG, insertion and deletion.

The metrics score both precisions' maps with the same fp32 model, so a change is
the maps' change, not the metric's. Insertion/deletion use ``--steps`` steps
(default 56; the metric's own default is 224). Writes
``benchmarks/results/precision_fidelity.{json,md}``::

    python benchmarks/precision_fidelity.py [--methods gradcam,...] [--steps 56]
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import fastcam
from fastcam.data import load_photos
from fastcam.evaluation.tables import t_interval
from fastcam.metrics import average_drop, average_gain, deletion_auc, insertion_auc
from fastcam.metrics.avx import pearson

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["cam", "gradcam", "gradcam++", "scorecam", "liftcam", "opticam", "shapcam", "advise"]


def photo_targets(names: list[str]) -> list[int]:
    rows = [r for r in (ROOT / "tests" / "data" / "photos_labels.csv").read_text().splitlines()
            if r and not r.startswith("#")]
    labels = {r["image"]: int(r["class"]) for r in csv.DictReader(rows)}
    return [labels[n] for n in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--steps", type=int, default=56)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "precision_fidelity"))
    args = ap.parse_args()
    model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
    norm = model.normalization
    x, names = load_photos()
    targets = photo_targets(names)
    metric_kw = dict(targets=targets, normalize=norm)
    rows = []
    for method in args.methods.split(","):
        maps, seconds = {}, {}
        for precision in ("fp32", "bf16"):
            t0 = time.perf_counter()
            maps[precision] = fastcam.explain(model, x, method, "_head_act", targets, normalize=norm,
                                              precision=precision)
            seconds[precision] = time.perf_counter() - t0
        r = pearson(maps["fp32"].flatten(1).double(), maps["bf16"].flatten(1).double())
        row = {"method": method, "pearson_worst": float(r.min()), "pearson_mean": float(r.mean()),
               "seconds_fp32": seconds["fp32"], "seconds_bf16": seconds["bf16"]}
        for name, fn, kw in (("ad", average_drop, {}), ("ag", average_gain, {}),
                             ("insertion", insertion_auc, {"steps": args.steps}),
                             ("deletion", deletion_auc, {"steps": args.steps})):
            per = {p: fn(model, x, maps[p], **metric_kw, **kw).double().cpu().numpy() * 100
                   for p in maps}
            n, mean32, half32 = t_interval(per["fp32"])
            row[name] = {"fp32_mean": float(mean32), "fp32_half_width": float(half32),
                         "bf16_mean": float(np.nanmean(per["bf16"])),
                         "change": float(np.nanmean(per["bf16"]) - mean32)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    meta = {"model": "efficientnet_lite0 (bundled, pretrained)", "layer": "_head_act",
            "images": names, "targets": targets, "steps": args.steps,
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            "bf16_native": fastcam.engine.cpu_supports(torch.bfloat16)}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["| method | Pearson worst | Pearson mean | ΔAD | ΔAG | ΔInsertion | ΔDeletion | fp32 s | bf16 s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        d = " | ".join(f"{r[k]['change']:+.2f} (fp32 {r[k]['fp32_mean']:.1f} ± {r[k]['fp32_half_width']:.1f})"
                       for k in ("ad", "ag", "insertion", "deletion"))
        lines.append(f"| {r['method']} | {r['pearson_worst']:.4f} | {r['pearson_mean']:.4f} | {d} | "
                     f"{r['seconds_fp32']:.1f} | {r['seconds_bf16']:.1f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
