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
    ("sanity", 50, ["cam", "gradcam", "gradcam++", "liftcam", "shapcam", "ablationcam", "advise", "fakecam"],
     "sparseness,sanity"),
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
        wall = time.perf_counter() - t0
        print(f"{args.model} {group}: exit {code}, {wall:.0f} s", flush=True)
        # the whole command's time (eval_timings.json's total leaves out the sanity check)
        (eval_dir(args.work, args.model, group) / "wall_seconds.txt").write_text(f"{wall:.1f}\n")
        if code:
            sys.exit(code)


# -- timing: seconds per image in fp32 and bf16 ---------------------------------------
#: methods whose bf16 maps are faithful to fp32 (benchmarks/results/precision_fidelity.md:
#: Pearson ≥ 0.98 on every photo); Opti-CAM and ADVISE are not, so they run in fp32 only
BF16_FAITHFUL = ("cam", "gradcam", "gradcam++", "liftcam", "shapcam", "scorecam", "ablationcam", "fakecam")


def run_timing(args) -> None:
    """Seconds per image of each method and of the metrics, fp32 and (where
    faithful) bf16, median of ``--repeats`` runs on ``--timing-images`` images
    (Score-CAM: 4 images, one run) in one process, one thread; into
    ``RESULTS/timing.json``."""
    import json
    import statistics

    from fastcam import metrics as M
    from fastcam.engine import cpu_supports
    from fastcam.evaluation.files import load_images, read_label_rows
    from fastcam.methods import METHODS as ALL
    from fastcam.models.loading import load_model
    from fastcam.preflight import build_explainer, resolve_normalize

    paths = image_list(args.work, args.timing_images).read_text().split()
    labels = {r.key: r.label for r in read_label_rows(str(DATA / "labels.csv"))}
    batch = load_images(paths, paths, 224, "resize")
    x = batch.x
    y = torch.tensor([labels[Path(p).stem] for p in paths])
    precisions = ["fp32"] + (["bf16"] if cpu_supports(torch.bfloat16) else [])
    results = json.loads((RESULTS / "timing.json").read_text()) if (RESULTS / "timing.json").exists() else {}
    for model in ([args.model] if args.model else MODELS):
        spec = MODELS[model]
        loaded = load_model(spec["model"], spec["weights"], layer=spec["layer"], hash_weights=False)
        norm = resolve_normalize(spec["normalize"], loaded)
        rows = results.setdefault(model, {})

        def timed(fn, repeats):
            fn()                                    # warm-up: graph, calibration, first-call costs
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                out = fn()
                times.append(time.perf_counter() - t0)
            return statistics.median(times), out

        for m in args.methods:
            for precision in precisions:
                if precision != "fp32" and m not in BF16_FAITHFUL:
                    continue
                cam = build_explainer(ALL[m], loaded.model, loaded.layer, norm, None, precision)
                xb, yb = (x[:4], y[:4]) if m == "scorecam" else (x, y)
                seconds, maps = timed(lambda: cam(xb, yb), 1 if m == "scorecam" else args.repeats)
                rows[f"{m}/{precision}"] = seconds / len(xb)
                print(f"{model} {m} {precision}: {seconds / len(xb):.4f} s/img", flush=True)
                if m != "gradcam":
                    continue
                metric_fns = {
                    "ad,ai,ag,add": lambda: M.confidence_changes(loaded.model, x, maps, y, normalize=norm,
                                                                 precision=precision),
                    "insertion": lambda: M.insertion_auc(loaded.model, x, maps, y, normalize=norm,
                                                         steps=CURVE_STEPS, precision=precision, progress=False),
                    "deletion": lambda: M.deletion_auc(loaded.model, x, maps, y, normalize=norm,
                                                       steps=CURVE_STEPS, precision=precision, progress=False),
                    "road_morf": lambda: M.road(loaded.model, x, maps, y, order="morf", normalize=norm,
                                                precision=precision, progress=False),
                }
                for k, fn in metric_fns.items():
                    seconds, _ = timed(fn, args.repeats)
                    rows[f"metric:{k}/{precision}"] = seconds / len(x)
                    print(f"{model} {k} {precision}: {seconds / len(x):.4f} s/img", flush=True)
    rows_meta = {"images": args.timing_images, "repeats": args.repeats, "threads": torch.get_num_threads(),
                 "torch": torch.__version__}
    results["_setup"] = rows_meta
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "timing.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


# -- publish: the committed files, then the tables from them ---------------------------
def _read_rows(path: Path) -> list[dict]:
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def collect(work: Path, model: str) -> None:
    """Write ``RESULTS/<model>_per_image.csv`` (one row per image and method, every
    metric, empty where not evaluated), ``<model>_low_res.npz`` (each method's
    low-res maps, float32, with the image ids and targets) and ``<model>_run.json``
    (the commands, top-1, and the seconds each method and metric took)."""
    import csv
    import json

    import numpy as np
    import zarr

    from fastcam.evaluation.runner import METRICS

    RESULTS.mkdir(parents=True, exist_ok=True)
    merged: dict[tuple[str, str], dict] = {}
    run = {"model": model, "groups": {}, "map_seconds_per_image": {}, "metric_seconds_per_image": {}}
    for group, n, methods, metrics in GROUPS:
        d = eval_dir(work, model, group)
        timings = json.loads((d / "eval_timings.json").read_text())
        run["groups"][group] = {"images": n, "methods": methods, "metrics": metrics.split(","),
                                "command": (d / "eval_command.txt").read_text().strip(),
                                "seconds": float((d / "wall_seconds.txt").read_text())
                                if (d / "wall_seconds.txt").exists() else timings["total_seconds"],
                                "threads": timings["threads"]}
        for m in methods:
            run["map_seconds_per_image"].setdefault(m, timings["method_seconds"][m] / timings["images"])
            for k in metrics.split(","):
                if k != "sanity":
                    run["metric_seconds_per_image"][f"{m}/{k}"] = \
                        timings["method_metric_seconds"][f"{m}/{k}"] / timings["images"]
        for r in _read_rows(d / "eval_per_image.csv"):
            key = (Path(r["image"]).stem, r["method"])
            row = merged.setdefault(key, {"image": key[0], "method": r["method"], "target": r["target"],
                                          "predicted": r["predicted"]})
            for k in metrics.split(","):
                if k == "sanity":
                    continue
                if k in row and row[k] != r[k]:
                    raise SystemExit(f"{key} {k}: {row[k]} in one group, {r[k]} in another")
                row[k] = r[k]
        if (d / "eval_sanity.csv").exists():
            (RESULTS / f"{model}_sanity.csv").write_text((d / "eval_sanity.csv").read_text())
    order = {m: i for i, m in enumerate(METHODS)}
    rows = sorted(merged.values(), key=lambda r: (r["image"], order[r["method"]]))
    with open(RESULTS / f"{model}_per_image.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, ["image", "target", "predicted", "method", *METRICS], restval="")
        w.writeheader()
        w.writerows(rows)
    arrays = {}
    for m in METHODS:
        if m == "fakecam":      # the same full-size map for every image, by definition
            continue
        g = zarr.open_group(str(store_path(work, model, m)), mode="r")
        ids = [Path(str(p)).stem for p in g["path"][:]]
        arrays[f"{m}/low_res"] = np.asarray(g["low_res"][:], dtype=np.float32)
        arrays[f"{m}/image"] = np.asarray(ids)
        arrays[f"{m}/target"] = np.asarray(g["target"][:], dtype=np.int32)
        run.setdefault("stores", {})[m] = {k: g.attrs["fastcam"].get(k) for k in
                                           ("method", "options", "model", "weights", "layer", "size", "normalize",
                                            "precision", "preprocess", "fastcam_version", "torch_version")}
    np.savez_compressed(RESULTS / f"{model}_low_res.npz", **arrays)
    (RESULTS / f"{model}_run.json").write_text(json.dumps(run, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RESULTS / (model + '_per_image.csv')}, {model}_low_res.npz, {model}_run.json")


def load_result(model: str):
    """The committed per-image results of ``model`` as an EvalResult (NaN where a
    method × metric was not evaluated on an image) and the run's record."""
    import json
    import math

    import numpy as np

    from fastcam.evaluation.runner import METRICS, EvalResult

    rows = _read_rows(RESULTS / f"{model}_per_image.csv")
    run = json.loads((RESULTS / f"{model}_run.json").read_text())
    names = sorted({r["image"] for r in rows})
    index = {n: i for i, n in enumerate(names)}
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    metrics = [k for k in METRICS if any(r.get(k) for r in rows)]
    values = {(m, k): np.full(len(names), math.nan) for m in methods for k in metrics}
    targets, predicted = [0] * len(names), [0] * len(names)
    for r in rows:
        i = index[r["image"]]
        targets[i], predicted[i] = int(r["target"]), int(r["predicted"])
        for k in metrics:
            if r.get(k):
                values[(r["method"], k)][i] = float(r[k])
    seconds = {m: run["map_seconds_per_image"][m] * len(names) for m in methods}
    result = EvalResult(names, targets, predicted, methods, metrics, values, seconds, {})
    return result, run


def _fmt(n: int, mean: float, half: float, scale: str = "{:.1f}") -> str:
    import math

    if n == 0:
        return "–"
    return scale.format(mean) if math.isnan(half) else f"{scale.format(mean)} ± {scale.format(half)}"


def tables(write: bool = True) -> str:
    """The Markdown of every model's tables and claims, from the committed files;
    with ``write``, written to ``RESULTS/tables.md`` and ``docs/imagenet-val.md``."""
    import json

    from fastcam.evaluation.claims import applicable, claims_table, judge
    from fastcam.evaluation.published import PAPER_CLAIMS
    from fastcam.evaluation.runner import METRICS
    from fastcam.evaluation.tables import t_interval

    out = [PAGE_HEAD]
    glance: dict[tuple, dict] = {}          # (method, rival, metric) -> model -> ClaimResult
    for model in MODELS:
        if not (RESULTS / f"{model}_per_image.csv").exists():
            continue
        result, run = load_result(model)
        hits = sum(int(t == p) for t, p in zip(result.targets, result.predicted))
        n_all = len(result.names)
        spec = MODELS[model]
        out.append(f"## `{model}`: ImageNet-val subset (n = {n_all:,})\n")
        out.append(f"Top-1 on these {n_all:,} images: **{100 * hits / n_all:.1f}%** ({hits}/{n_all}). "
                   f"Layer `{run['stores']['gradcam']['layer']}`, normalisation mean = std = 0.5, "
                   f"`--preprocess resize` to 224×224, fp32, one CPU thread, the ground-truth class.\n")
        for title, keys in (("Cheap metrics", CHEAP_METRICS.split(",")), ("Curves", CURVE_METRICS.split(","))):
            keys = [k for k in keys if k in result.metrics]
            cols = [f"{METRICS[k].title} {'↑' if METRICS[k].higher_is_better else '↓'}" for k in keys]
            out.append(f"### {title}\n")
            out.append("| Method | n | " + " | ".join(cols) + " | map s/img |")
            out.append("|---|---:|" + "---:|" * (len(cols) + 1))
            for m in result.methods:
                stats = [t_interval(result.values[(m, k)]) for k in keys]
                n = max(st[0] for st in stats)
                if n == 0:
                    continue
                cells = [_fmt(*st, scale="{:.2f}" if k == "complexity" else "{:.1f}") for st, k in zip(stats, keys)]
                out.append(f"| {m} | {n} | " + " | ".join(cells) + f" | {run['map_seconds_per_image'][m]:.3f} |")
            out.append("")
        out.append("Values ×100 (complexity in nats), mean ± half-width of the 95% Student-t interval; "
                   "n: the images each method was evaluated on (the pointing games and relevance "
                   "metrics count the images with a box inside the input, all of them here). "
                   f"Insertion/deletion with {CURVE_STEPS} steps; ROAD at 10–90% removed, noise 0.01. "
                   "Energy PG and Rel. mass are one definition (the share of the map inside the boxes), "
                   "kept under both papers' names. FakeCAM's ties make its removal order arbitrary: "
                   "scattered pixels imputed away cost the score most, so it gets the lowest (\"best\") "
                   "ROAD MoRF and the lowest LeRF; only the two together (Rong et al.'s combined "
                   "(LeRF − MoRF)/2) see through it.\n")
        claims = applicable(PAPER_CLAIMS, result.methods, result.metrics)
        out.append("### Papers' claims\n")
        out.append("Paired per-image differences (method − rival) on the images both were evaluated on, "
                   "with their 95% Student-t interval. The published numbers are for other models "
                   "(ResNet-50 / VGG16) and other images: they are context, not a target.\n")
        judged = judge(result, claims)
        for r in judged:
            glance.setdefault((r.claim.method, r.rival, r.claim.metric), {})[model] = r
        out.append(claims_table(judged))
        sanity = RESULTS / f"{model}_sanity.csv"
        if sanity.exists():
            rows = _read_rows(sanity)
            last = max(int(r["step"]) for r in rows)
            n_s = next(g["images"] for g in run["groups"].values() if "sanity" in g["metrics"])
            out.append("### Model-randomisation check\n")
            out.append(f"On the first {n_s} images, the layer groups re-initialised from the top, cascading "
                       f"(Adebayo et al. 2018): mean Spearman rank correlation and SSIM between each "
                       f"method's maps on the trained and the fully randomised model ({last} groups). "
                       "Near 0 means the maps depend on the weights, as an explanation must; FakeCAM's "
                       "do not, by construction.\n")
            out.append("| Method | Spearman | SSIM |")
            out.append("|---|---:|---:|")
            for r in rows:
                if int(r["step"]) == last:
                    out.append(f"| {r['method']} | {float(r['spearman']):.3f} | {float(r['ssim']):.3f} |")
            out.append("")
        out.append("### What it cost\n")
        out.append("CPU seconds per image, one thread (map: `fastcam generate`'s per-image time, decoding "
                   "included; metric: `fastcam eval --maps`):\n")
        out.append("| Method | map | " + " | ".join(METRICS[k].title for k in result.metrics) + " |")
        out.append("|---|---:|" + "---:|" * len(result.metrics))
        for m in result.methods:
            cells = [run["metric_seconds_per_image"].get(f"{m}/{k}") for k in result.metrics]
            out.append(f"| {m} | {run['map_seconds_per_image'][m]:.3f} | " +
                       " | ".join("–" if c is None else f"{c:.3f}" for c in cells) + " |")
        total = sum(g["seconds"] for g in run["groups"].values()) + sum(
            run["map_seconds_per_image"][m] * N_IMAGES[m] for m in result.methods)
        out.append(f"\nThe whole run for this model: {total / 3600:.2f} hours of one thread's wall time "
                   "(an upper bound on its CPU time: the machine was shared) "
                   f"(maps {sum(run['map_seconds_per_image'][m] * N_IMAGES[m] for m in result.methods) / 60:.0f} min, "
                   f"metrics {sum(g['seconds'] for g in run['groups'].values()) / 60:.0f} min).\n")
    out[1:1] = [claims_at_a_glance(glance)]
    if (RESULTS / "timing.json").exists():
        out.append(timing_table(json.loads((RESULTS / "timing.json").read_text())))
    text = "\n".join(out) + "\n"
    if write:
        (RESULTS / "tables.md").write_text(text, encoding="utf-8")
        (ROOT / "docs" / "imagenet-val.md").write_text(text, encoding="utf-8")
    return text


def timing_table(timing: dict) -> str:
    """fp32 and bf16 seconds per image, per model, from ``RESULTS/timing.json``."""
    setup = timing.get("_setup", {})
    lines = ["## fp32 and bf16: seconds per image\n",
             f"`python benchmarks/eval_imagenet_val.py timing`: one process, {setup.get('threads', 1)} thread, "
             f"{setup.get('images')} images per call (Score-CAM: 4), the median of {setup.get('repeats')} "
             "run(s) after a warm-up, this project's 2-core CPU (AMX-BF16; shared, noisy). bf16 only for "
             "the methods whose bf16 maps are faithful to fp32 (`benchmarks/results/precision_fidelity.md`; "
             "not Opti-CAM, not ADVISE); the metrics on Grad-CAM's maps. fp32/bf16: the speed-up.\n"]
    models = [m for m in MODELS if m in timing]
    lines.append("| | " + " | ".join(f"`{m}` fp32 s | bf16 s | fp32/bf16" for m in models) + " |")
    lines.append("|---|" + "---:|" * (3 * len(models)))
    keys = [k.rsplit("/", 1)[0] for m in models for k in timing[m]]
    order = list(dict.fromkeys(sorted(keys, key=lambda k: (k.startswith("metric:"), keys.index(k)))))
    for key in order:
        cells = []
        for m in models:
            f32, b16 = timing[m].get(f"{key}/fp32"), timing[m].get(f"{key}/bf16")
            cells += ["–" if f32 is None else f"{f32:.4f}", "–" if b16 is None else f"{b16:.4f}",
                      f"{f32 / b16:.2f}×" if f32 and b16 else "–"]
        label = key.replace("metric:", "metric ")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def claims_at_a_glance(glance: dict) -> str:
    """One line per claim and rival: each model's paired difference, n and verdict."""
    from fastcam.evaluation.runner import METRICS

    models = [m for m in MODELS if any(m in v for v in glance.values())]
    lines = ["## The papers' claims at a glance\n",
             "Paired difference (method − rival) with its 95% interval, the images it rests on, and the "
             "verdict: **holds** / **does not hold** when the whole interval is on one side of 0, "
             "undecided otherwise. Per model below: every table.\n",
             "| Claim | " + " | ".join(f"`{m}`" for m in models) + " |",
             "|---|" + "---|" * len(models)]
    for (method, rival, metric), by_model in glance.items():
        sense = "↑" if METRICS[metric].higher_is_better else "↓"
        cells = []
        for m in models:
            r = by_model.get(m)
            if r is None:
                cells.append("–")
                continue
            iv = r.interval
            verdict = r.verdict if r.verdict == "undecided" else f"**{r.verdict}**"
            cells.append(f"{iv.mean:+.1f} [{iv.low:+.1f}, {iv.high:+.1f}], n = {iv.n}: {verdict}")
        lines.append(f"| {method} better than {rival} on {METRICS[metric].title} {sense} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


PAGE_HEAD = """# Results on an ImageNet-val subset (n = 1,000)

Every faithfulness and localisation number on this page comes from the 1,000 real
ILSVRC2012 validation images of `../shared/data/imagenet-val` (626 classes, already
stretched to 227×227) and two real ImageNet models: the bundled EfficientNet-Lite0 and
Google Coral's MobileNetV2. This subset is easier than the whole validation set (both
models score above their published top-1), so read every number as "ImageNet-val subset",
never as ImageNet-val.

How it ran (`benchmarks/eval_imagenet_val.py`): `fastcam generate` computed each method's
maps once into a store (`--save low-res`), then `fastcam eval --maps` evaluated them,
resumably. The cheap methods and metrics ran on all 1,000 images; Opti-CAM (100
iterations) on the first 100, Score-CAM on the first 50, the curve metrics
(insertion, deletion, ROAD) on the first 50 (the sorted ids: ILSVRC2012's validation
order is already shuffled across classes). The low-resolution maps and the per-image
results are committed in `benchmarks/results/imagenet_val/`; `python
benchmarks/eval_imagenet_val.py tables` recomputes this page from them. MobileNetV2's
Shap-CAM and Ablation-CAM times here predate fastcam recognising its functional global
pool as a linear head (found by this run, fixed after it: 10–20× fewer tail passes, the
same maps within 1e-5).

FakeCAM (a map that is 1 at every pixel but the top-left one, whatever the image) is
there to show what Average Drop alone rewards: masking with it keeps the whole image,
so its AD is near 0 while it explains nothing; AG, ADD, the pointing games and the
curves expose it.
"""


def run_publish(args) -> None:
    for model in ([args.model] if args.model else MODELS):
        collect(args.work, model)
    print(tables())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=("maps", "eval", "timing", "publish", "tables"))
    p.add_argument("--model", choices=sorted(MODELS), default=None)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--groups", default="", help="eval: the groups to run (default: all)")
    p.add_argument("--work", type=Path, default=Path(os.environ.get("FASTCAM_IMAGENET_WORK", "/tmp/fastcam-imagenet-val")))
    p.add_argument("--batch-size", type=int, default=25)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timing-images", type=int, default=16, help="timing: images per call")
    p.add_argument("--repeats", type=int, default=3, help="timing: runs per median")
    args = p.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    args.groups = [g for g in args.groups.split(",") if g]
    torch.set_num_threads(args.threads)
    if args.stage == "tables":
        print(tables())
        return 0
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: this benchmark needs the shared ImageNet-val subset beside the repository")
    if args.stage in ("maps", "eval") and args.model is None:
        sys.exit(f"{args.stage}: pass --model ({', '.join(MODELS)})")
    {"maps": run_maps, "eval": run_eval, "timing": run_timing, "publish": run_publish}[args.stage](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
