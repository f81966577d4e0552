"""Before/after timings of one change, side by side, on this machine.

Runs each case in a fresh subprocess against two source trees of fastcam
(``--before`` and ``--after``: checkouts with their compiled ``fastcam/_C``),
alternating before/after case by case and round by round, so both see the
same machine load; each subprocess times ``--repeats`` calls after one warm-up
call and prints their median. The table gives per case the median over rounds
and the ratio after/before (below 1: the change is faster).

    python benchmarks/before_after.py --before ../old --after . --rounds 2

With ``--startup``, the start-up cases instead, each in a fresh process (wall
time of the whole process for the first two; the calls timed inside it for the
others): ``import fastcam``; ``fastcam --help``; ``fastcam explain`` without
arguments (a usage error); importing torch and fastcam and loading 2 photos and the
bundled EfficientNet-Lite0; the first and the second GradCAM call on them (224 px).

    python benchmarks/before_after.py --before ../old --after . --startup --rounds 5

Cases (random-init torchvision models, eval mode, parameters frozen, 2 threads):
Grad-CAM on ResNet-50 B4 224 px at ``layer4``; Score-CAM on ResNet-18 B1 112 px
at ``layer4`` (512 masked forwards); Shap-CAM on ResNet-50 B1 224 px, 4
permutations, at ``layer4`` (a linear head: the fast path) and at the mid-block
``layer4.1.conv1`` (a tail with side inputs: one prefix per image); Ablation-CAM
on ResNet-50 B1 224 px at ``layer4`` (closed form). Each in fp32 and bf16 where
the CPU runs bf16.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

CASES = {
    "gradcam-r50-layer4-B4": ("gradcam", "resnet50", "layer4", 4, 224, {}),
    "scorecam-r18-layer4-B1-112px": ("scorecam", "resnet18", "layer4", 1, 112, {"batch_size": 64}),
    "shapcam-r50-layer4-B1": ("shapcam", "resnet50", "layer4", 1, 224, {"permutations": 4}),
    "shapcam-r50-layer4.1.conv1-B1": ("shapcam", "resnet50", "layer4.1.conv1", 1, 224,
                                      {"permutations": 4}),
    "ablationcam-r50-layer4-B1": ("ablationcam", "resnet50", "layer4", 1, 224, {}),
}

_CHILD = r"""
import json, statistics, sys, time, torch, torchvision
import fastcam
from fastcam.methods import METHODS
torch.set_num_threads(2)
method, arch, layer, batch, size, options, precision, repeats = json.loads(sys.argv[1])
torch.manual_seed(0)
model = getattr(torchvision.models, arch)().eval().requires_grad_(False)
x = torch.rand(batch, 3, size, size)
cam = METHODS[method](model, [layer], precision=precision, **options)
cam(x, [1] * batch)
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    cam(x, [1] * batch)
    times.append(time.perf_counter() - t0)
print(json.dumps({"median": statistics.median(times), "where": fastcam.__file__}))
"""


#: start-up case -> (the child's code, what is timed: "process" (its wall time) or a key it prints)
STARTUP = {
    "import fastcam": ("import fastcam", "process"),
    "fastcam --help": ("import sys; from fastcam.cli import main; sys.argv = ['fastcam', '--help']; main()",
                       "process"),
    "fastcam explain (usage error)": (
        "import sys; from fastcam.cli import main; sys.argv = ['fastcam', 'explain']; main()", "process"),
    "import + photos + bundled model": ("GRADCAM", "load"),
    "GradCAM first call": ("GRADCAM", "first"),
    "GradCAM second call": ("GRADCAM", "second"),
}
_GRADCAM = r"""
import time
start = time.perf_counter()
import json, torch
import fastcam
from fastcam.data import load_photos
torch.set_num_threads(2)
x, _ = load_photos(["chelsea", "coffee"])
model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
load = time.perf_counter() - start
cam = fastcam.GradCAM(model, normalize=model.normalization)
times = []
for _ in range(2):
    t0 = time.perf_counter()
    cam(x)
    times.append(time.perf_counter() - t0)
print(json.dumps({"load": load, "first": times[0], "second": times[1], "where": fastcam.__file__}))
"""


def _run_startup(tree: Path, case: str) -> float:
    import json
    import time
    code, timed = STARTUP[case]
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()), OMP_NUM_THREADS="2")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _GRADCAM if code == "GRADCAM" else code], env=env,
                         capture_output=True, text=True, cwd=str(tree.resolve()))
    wall = time.perf_counter() - t0
    if out.returncode not in (0, 2):
        raise RuntimeError(f"{case} in {tree}: exit {out.returncode}\n{out.stderr[-2000:]}")
    if timed == "process":
        return wall
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["where"].startswith(str(tree.resolve())):
        raise RuntimeError(f"fastcam came from {result['where']}, not {tree}")
    return result[timed]


def _run(tree: Path, case: tuple, precision: str, repeats: int) -> float:
    import json
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()), OMP_NUM_THREADS="2")
    arg = json.dumps([*case[:5], case[5], precision, repeats])
    out = subprocess.run([sys.executable, "-c", _CHILD, arg], env=env, capture_output=True,
                         text=True, check=True, cwd=str(tree.resolve()))
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["where"].startswith(str(tree.resolve())):
        raise RuntimeError(f"fastcam came from {result['where']}, not {tree}")
    return result["median"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", type=Path, required=True)
    p.add_argument("--after", type=Path, required=True)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--startup", action="store_true", help="the start-up cases instead")
    args = p.parse_args()
    rows = []
    if args.startup:
        for name in STARTUP:
            times = {"before": [], "after": []}
            for r in range(args.rounds):
                for which in (("before", "after") if r % 2 == 0 else ("after", "before")):
                    times[which].append(_run_startup(args.before if which == "before" else args.after, name))
            b, a = statistics.median(times["before"]), statistics.median(times["after"])
            print(f"{name:34s} before {b * 1e3:9.1f} ms  after {a * 1e3:9.1f} ms  after/before {a / b:.3f}",
                  flush=True)
        return
    for name in args.cases.split(","):
        for precision in args.precisions.split(","):
            times = {"before": [], "after": []}
            for r in range(args.rounds):
                order = ("before", "after") if r % 2 == 0 else ("after", "before")
                for which in order:
                    tree = args.before if which == "before" else args.after
                    times[which].append(_run(tree, CASES[name], precision, args.repeats))
            b, a = statistics.median(times["before"]), statistics.median(times["after"])
            row = f"{name:34s} {precision:5s} before {b * 1e3:9.1f} ms  after {a * 1e3:9.1f} ms  after/before {a / b:.3f}"
            print(row, flush=True)
            rows.append(row)


if __name__ == "__main__":
    main()
