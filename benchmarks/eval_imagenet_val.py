"""The published evaluation on the shared ImageNet-val subset (issue 30): maps
computed once into ``fastcam generate`` stores, metrics evaluated from them by
``fastcam eval --maps``, resumably; then the tables and the claims.

Both real models, fp32, the ground-truth class, ``--preprocess resize`` (the
shared images are already stretched to 227×227):

* ``efficientnet_lite0``: the bundled ImageNet weights (its own 0.5/0.5
  normalisation), target layer ``_head_act``;
* ``mobilenet_v2``: ``../shared/models/mobilenet_v2_coral.pt``, normalisation
  mean = std = 0.5, target layer ``features.18``.

Stages (each resumes where it stopped; ``--work`` holds the stores and the eval
folders, never the repository)::

    python benchmarks/eval_imagenet_val.py maps  --model mobilenet_v2 [--methods ...]
    python benchmarks/eval_imagenet_val.py eval  --model mobilenet_v2
    python benchmarks/eval_imagenet_val.py publish

``maps`` runs ``fastcam.generate`` per method on the first ``N_IMAGES[method]``
images (sorted ids: ILSVRC2012's validation order is already shuffled across
classes) with ``--save low-res`` and float32 maps. ``eval`` runs ``fastcam eval
--maps`` in the groups of :data:`GROUPS` (the costly metrics on fewer images).
``publish`` writes ``benchmarks/results/imagenet_val/``: each model's low-res
maps (npz), the per-image results, the tables and the claims.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FASTCAM_SHARED", ROOT.parent / "shared"))
DATA = SHARED / "data" / "imagenet-val"
WEIGHTS = SHARED / "models" / "mobilenet_v2_coral.pt"
RESULTS = ROOT / "benchmarks" / "results" / "imagenet_val"

MODELS = {
    "efficientnet_lite0": dict(model="efficientnet_lite0", weights=None, layer=None,
                               normalize="0.5,0.5,0.5/0.5,0.5,0.5"),
    "mobilenet_v2": dict(model="torchvision:mobilenet_v2", weights=str(WEIGHTS), layer="features.18",
                         normalize="0.5,0.5,0.5/0.5,0.5,0.5"),
}

#: images per method (the first N of the sorted ids); the costly methods on fewer
N_IMAGES = {"cam": 1000, "gradcam": 1000, "gradcam++": 1000, "liftcam": 1000, "fakecam": 1000,
            "ablationcam": 1000, "shapcam": 1000, "advise": 1000, "opticam": 100, "scorecam": 50}
METHODS = tuple(N_IMAGES)
CHEAP_METRICS = ("ad,ai,ag,add,pointing,energy,sparseness,complexity,"
                 "relevance_mass_accuracy,relevance_rank_accuracy")
CURVE_METRICS = "insertion,deletion,road_morf,road_lerf"
#: insertion/deletion steps: 56 of 896 pixels at 224² (RISE uses 224 of 224 pixels; four
#: times the passes for a finer Riemann sum of the same curve)
CURVE_STEPS = 56
#: (group, images, methods, metrics): one ``fastcam eval --maps`` run each. A method's
#: values on an image are the same in every group (the same stored map, the same
#: per-part seeds), so the claims pair methods across groups on the images both have.
GROUPS = (
    ("all", 1000, [m for m, n in N_IMAGES.items() if n >= 1000], CHEAP_METRICS),
    ("opticam", N_IMAGES["opticam"], ["opticam"], CHEAP_METRICS),
    ("scorecam", N_IMAGES["scorecam"], ["scorecam"], CHEAP_METRICS),
    ("curves", 50, list(METHODS), CURVE_METRICS),
)


def image_list(work: Path, n: int) -> Path:
    """A text file of the first ``n`` images' paths (sorted)."""
    paths = sorted(p for p in (DATA / "images").iterdir() if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    if len(paths) < n:
        sys.exit(f"{DATA / 'images'} has {len(paths)} images, fewer than {n}")
    out = work / "lists" / f"first{n}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{p}\n" for p in paths[:n])
    if not out.exists() or out.read_text() != text:
        out.write_text(text)
    return out


def store_path(work: Path, model: str, method: str) -> Path:
    return work / "stores" / model / f"{method}.zarr"


def run_maps(args) -> None:
    import fastcam

    spec = MODELS[args.model]
    for method in args.methods:
        t0 = time.perf_counter()
        summary = fastcam.generate(image_list(args.work, N_IMAGES[method]), store_path(args.work, args.model, method),
                                   method, model=spec["model"], weights=spec["weights"], layer=spec["layer"],
                                   target=DATA / "labels.csv", batch_size=args.batch_size, workers=0,
                                   dtype="float32", normalize=spec["normalize"],
                                   preprocess="resize", save=("low-res",), progress=False)
        print(f"{args.model} {method}: {summary.n_images} images, {time.perf_counter() - t0:.0f} s", flush=True)


def eval_dir(work: Path, model: str, group: str) -> Path:
    return work / "eval" / model / group


def run_eval(args) -> None:
    from fastcam.apps.cli import main as fastcam_main

    spec = MODELS[args.model]
    for group, n, methods, metrics in GROUPS:
        if args.groups and group not in args.groups:
            continue
        argv = ["eval", "--images", str(image_list(args.work, n)), "--labels", str(DATA / "labels.csv"),
                "--boxes", str(DATA / "boxes.csv"), "--preprocess", "resize", "--model", spec["model"],
                "--normalize", spec["normalize"], "--metrics", metrics, "--steps", str(CURVE_STEPS),
                "--batch-size", "25", "--out", str(eval_dir(args.work, args.model, group)), "--resume",
                "--no-progress"]
        argv += ["--weights", spec["weights"]] if spec["weights"] else []
        argv += ["--layer", spec["layer"]] if spec["layer"] else []
        for m in methods:
            argv += ["--maps", f"{m}={store_path(args.work, args.model, m)}"]
        t0 = time.perf_counter()
        code = fastcam_main(argv)
        print(f"{args.model} {group}: exit {code}, {time.perf_counter() - t0:.0f} s", flush=True)
        if code:
            sys.exit(code)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=("maps", "eval", "publish"))
    p.add_argument("--model", choices=sorted(MODELS), default="efficientnet_lite0")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--groups", default="", help="eval: the groups to run (default: all)")
    p.add_argument("--work", type=Path, default=Path(os.environ.get("FASTCAM_IMAGENET_WORK", "/tmp/fastcam-imagenet-val")))
    p.add_argument("--batch-size", type=int, default=25)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    args.groups = [g for g in args.groups.split(",") if g]
    torch.set_num_threads(args.threads)
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: this benchmark needs the shared ImageNet-val subset beside the repository")
    {"maps": run_maps, "eval": run_eval}[args.stage](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
