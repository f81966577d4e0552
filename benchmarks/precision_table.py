"""The table of a ``bench_precision.py`` run: per group (method × model) every
row's median and fastcam's speed-up over the fastest peer in the same run
(peer median / fastcam median; > 1 means fastcam is faster)::

    python -m pytest benchmarks/bench_precision.py --benchmark-json=run.json
    python benchmarks/precision_table.py run.json > benchmarks/results/precision_methods.md
"""
from __future__ import annotations

import json
import sys


def rows(run: dict) -> dict[str, dict[str, float]]:
    groups: dict[str, dict[str, float]] = {}
    for b in run["benchmarks"]:
        note = b.get("extra_info", {}).get("note", b["name"])
        groups.setdefault(b["group"], {})[note] = b["stats"]["median"]
    return groups


def main(path: str) -> None:
    run = json.load(open(path))
    print(f"One run of benchmarks/bench_precision.py ({run['machine_info'].get('cpu', {}).get('brand_raw', '')}, "
          f"{run['datetime']}); medians in seconds; speed-up = fastest peer's median / fastcam's.\n")
    print("| group | fastcam fp32 | fastcam bf16 | fastest peer | its median | fp32 speed-up | bf16 speed-up | every row |")
    print("|---|---:|---:|---|---:|---:|---:|---|")
    for group, r in sorted(rows(run).items()):
        fp32, bf16 = r.get("fastcam fp32"), r.get("fastcam bf16")
        peers = {k: v for k, v in r.items() if not k.startswith("fastcam")}
        best = min(peers, key=peers.get) if peers else None
        cells = [group, f"{fp32:.3f}" if fp32 else "-", f"{bf16:.3f}" if bf16 else "-",
                 best or "(no peer)", f"{peers[best]:.3f}" if best else "-",
                 f"{peers[best] / fp32:.2f}×" if best and fp32 else "-",
                 f"{peers[best] / bf16:.2f}×" if best and bf16 else "-",
                 "; ".join(f"{k} {v:.3f}" for k, v in sorted(r.items(), key=lambda kv: kv[1]))]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
