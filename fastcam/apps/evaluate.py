"""``fastcam explain``, ``fastcam eval`` and ``fastcam photos``: arguments and
the glue from files to :func:`fastcam.evaluation.evaluate` and :func:`fastcam.explain`."""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import UsageError
from ..evaluation.files import (check_label_range, list_image_names, load_images, match_boxes, match_labels,
                                read_box_rows, read_label_rows, transform_boxes)
from ..evaluation.published import PUBLISHED, published_comparison
from ..evaluation.runner import METRICS, evaluate, parse_list, predict
from ..evaluation.tables import class_name, describe_normalize, markdown_table, write_outputs
from ..models.loading import BUNDLED, load_model
from ..preflight import PRECISION_CHOICES, check_precision, count_classes, resolve_normalize
from .options import check_common, key_value, usage_errors

DEFAULT_EVAL_METHODS = "cam,gradcam,gradcam++,scorecam,liftcam,shapcam,opticam,advise"
DEFAULT_EVAL_METRICS = "ad,ai,ag,add,insertion,deletion"


def _class_name(c: int) -> str:
    return class_name(c, unknown="class {}")


def _method_option(text: str) -> tuple[str, str, Any]:
    """``METHOD.KEY=VALUE`` (value parsed as JSON, else kept as a string)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise argparse.ArgumentTypeError(f"expected METHOD.KEY=VALUE, got {text!r}")
    key, parsed = key_value(text)
    method, name = key.split(".", 1)
    return method.strip().lower(), name.strip(), parsed


def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=BUNDLED,
                   help=f"{BUNDLED} (bundled, ImageNet weights; default) or torchvision:ARCH")
    p.add_argument("--weights", default=None, metavar="FILE", help="state dict for the model")
    p.add_argument("--layer", default=None,
                   help="target layer (default: _head_act for the bundled model, else the last spatial layer)")
    p.add_argument("--normalize", default="imagenet", metavar="imagenet|none|MEAN/STD",
                   help="imagenet (default): [0,1] pixel images, masks applied before the model's own "
                        "mean/std (bundled model: 0.5/0.5; torchvision: ImageNet's); none: the model "
                        "gets [0,1] pixels; or explicit MEAN/STD like 0.485,0.456,0.406/0.229,0.224,0.225")
    p.add_argument("--size", type=int, default=224, help="input and map size (default: %(default)s)")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, metavar="DIR", help="folder of images (recursive)")
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="lines IMAGE,CLASS (ground-truth class index); default: the predicted class")
    p.add_argument("--boxes", default=None, metavar="FILE",
                   help="lines IMAGE,X0,Y0,X1,Y1 in original pixels (for pointing, energy)")
    p.add_argument("--methods", default=DEFAULT_EVAL_METHODS, help="comma-separated (default: %(default)s)")
    p.add_argument("--metrics", default=DEFAULT_EVAL_METRICS,
                   help=f"comma-separated from {','.join(METRICS)},sanity (default: %(default)s); sanity: "
                        "the model-randomisation check (eval_sanity.csv, eval_sanity.png)")
    p.add_argument("--sanity-steps", type=int, default=8,
                   help="sanity: layer groups re-initialised from the top (default: %(default)s)")
    p.add_argument("--sanity-layers", default="cascade", metavar="cascade|independent",
                   help="sanity: cascading (default) or one group at a time")
    p.add_argument("--published", default=None, metavar="|".join(sorted(PUBLISHED)),
                   help="print the table next to a paper's published one")
    p.add_argument("-o", "--option", action="append", type=_method_option, default=[],
                   metavar="METHOD.KEY=VALUE", help="a method option, repeatable: -o opticam.max_iter=50")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for the eval_* files")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch (default: %(default)s)")
    p.add_argument("--metric-batch-size", type=int, default=64,
                   help="masked copies per forward in the metrics (default: %(default)s)")
    p.add_argument("--steps", type=int, default=224,
                   help="insertion/deletion steps (RISE: 224 at 224x224; default: %(default)s)")
    _model_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--precision", default="fp32", choices=PRECISION_CHOICES,
                   help="how the model runs for the methods and the metrics: fp32 (default), bf16 "
                        "or fp16 (autocast); an error if the device cannot run it natively")


def add_explain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--method", default="gradcam", help="explainer name (default: %(default)s)")
    p.add_argument("-o", "--option", action="append", type=_method_option, default=[],
                   metavar="METHOD.KEY=VALUE", help="a method option, repeatable")
    p.add_argument("--target", default="predicted", help="'predicted' (default) or a class index")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (PNG overlays, .npy maps)")
    _model_arguments(p)


def add_photos_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write NAME.png into")


def _options(items, methods) -> dict[str, dict]:
    """Method -> its ``-o`` options, each checked against the method's keyword options."""
    from ..generation.config import method_spec

    out: dict[str, dict] = {}
    for method, key, value in items:
        if method not in methods:
            raise UsageError(f"-o {method}.{key}: {method!r} is not among the methods {methods}")
        out.setdefault(method, {})[key] = value
    for method, opts in out.items():
        method_spec(method, opts)
    return out


def _setup(args):
    loaded = load_model(args.model, args.weights, layer=args.layer, size=args.size, device=args.device,
                        hash_weights=False)
    return loaded, resolve_normalize(args.normalize, loaded)


@usage_errors("eval")
def run_eval(args: argparse.Namespace) -> int:
    """``fastcam eval``: 0 when the table was written (failed images reported), 2 on a usage error."""
    from ..methods import METHODS

    methods = parse_list(args.methods, "methods", list(METHODS))
    metrics = parse_list(args.metrics, "metrics", [*METRICS, "sanity"])
    sanity = "sanity" in metrics
    metrics = [k for k in metrics if k != "sanity"]
    if args.sanity_steps < 1:
        raise UsageError(f"--sanity-steps must be >= 1, got {args.sanity_steps}")
    if args.sanity_layers not in ("cascade", "independent"):
        raise UsageError(f"--sanity-layers {args.sanity_layers!r}: cascade or independent")
    if args.published is not None and args.published not in PUBLISHED:
        raise UsageError(f"--published {args.published!r}: choose from {sorted(PUBLISHED)}")
    options = _options(args.option, methods)
    if any(METRICS[k].needs_boxes for k in metrics) and not args.boxes:
        raise UsageError(f"metric(s) {[k for k in metrics if METRICS[k].needs_boxes]} need --boxes FILE")
    check_common(args)
    precision = check_precision(args.precision, args.device)
    root, names = list_image_names(args.images)
    label_rows = read_label_rows(args.labels) if args.labels else None
    box_rows = read_box_rows(args.boxes) if args.boxes else None
    loaded, normalize = _setup(args)
    if label_rows is not None:
        check_label_range(args.labels, label_rows, count_classes(loaded, args.size))
    t_load = time.perf_counter()
    batch = load_images([os.path.join(root, n) for n in names], names, args.size)
    failed = list(batch.failed)
    keep = list(range(len(batch.names)))
    labels = match_labels(args.labels, label_rows, batch.names) if label_rows is not None else None
    if labels is not None:
        missing = [batch.names[i] for i in keep if batch.names[i] not in labels]
        failed += [(n, f"no class for it in {args.labels}") for n in missing]
        keep = [i for i in keep if batch.names[i] in labels]
    boxes_by_name = match_boxes(box_rows, batch.names) if box_rows is not None else None
    if not keep:
        for n, why in failed:
            print(f"fastcam eval: {n}: {why}", file=sys.stderr)
        raise UsageError(f"none of the {len(names)} image(s) in {args.images!r} could be evaluated")
    names_ok = [batch.names[i] for i in keep]
    x = batch.x[keep].to(args.device)
    load_s = time.perf_counter() - t_load
    predicted = predict(loaded.model, x, normalize, precision=precision).argmax(1).tolist()
    targets = [labels[n] for n in names_ok] if labels is not None else predicted
    boxes = None
    no_box: list[str] = []
    if boxes_by_name is not None:
        boxes = [transform_boxes(boxes_by_name.get(n, []), batch.sizes[i], args.size)
                 for n, i in zip(names_ok, keep)]
        no_box = [n for n, b in zip(names_ok, boxes) if not b]
    print(f"fastcam eval: {loaded.name} (layer {loaded.layer}), {len(names_ok)} image(s), "
          f"targets: {'labels ' + args.labels if labels is not None else 'predicted class'}; "
          f"normalize: {describe_normalize(normalize)}")
    for n, t, p in zip(names_ok, targets, predicted):
        print(f"  {n:<24} target {t:>4} {_class_name(t):<22} predicted {_class_name(p)}")
    result = evaluate(loaded.model, x, names_ok, targets, methods, metrics, layer=loaded.layer,
                      normalize=normalize, boxes=boxes, batch_size=args.batch_size,
                      metric_batch_size=args.metric_batch_size, steps=args.steps, method_options=options,
                      progress=not args.no_progress, predicted=predicted, precision=precision)
    result.failed = failed
    header = (f"`{loaded.name}` (layer `{loaded.layer}`), {len(names_ok)} images, targets: "
              f"{'ground-truth labels' if labels is not None else 'predicted class'}; normalize: "
              f"{describe_normalize(normalize)}; precision {precision}.")
    argv = getattr(args, "argv", None)
    command = "fastcam " + shlex.join(argv) if argv is not None else "fastcam eval (called from Python)"
    extra = {"load_seconds": load_s, "torch": torch.__version__, "threads": torch.get_num_threads(),
             "cpu_count": os.cpu_count(), "machine": platform.machine(), "device": str(args.device),
             "precision": precision,
             "no_boxes": no_box}
    paths = write_outputs(result, args.out, header=header, command=command, extra=extra)
    if sanity:
        from .sanity_report import run_sanity, write_sanity

        checks = run_sanity(loaded.model, x, targets, methods, layer=loaded.layer, normalize=normalize,
                            steps=args.sanity_steps, layers=args.sanity_layers, method_options=options)
        paths.update(write_sanity(checks, args.out))
        print()
        print(f"sanity ({args.sanity_layers}, {args.sanity_steps} layer groups from the top): "
              "mean Spearman / SSIM with the trained model's maps, fully randomised")
        for m, r in checks.items():
            print(f"  {m:<10} {float(r.mean('spearman')[-1]):6.3f} / {float(r.mean('ssim')[-1]):6.3f}")
    print()
    print(markdown_table(result, header))
    if args.published:
        print(published_comparison(result, args.published))
    print(f"total {result.total_seconds:.1f} s; per method: " +
          ", ".join(f"{m} {s:.1f} s" for m, s in result.method_seconds.items()))
    print("per metric: " + ", ".join(f"{k} {s:.1f} s" for k, s in result.metric_totals().items()))
    for p in paths.values():
        print(f"wrote {p}")
    if no_box:
        print(f"fastcam eval: {len(no_box)} image(s) without a box in the crop, left out of the "
              f"pointing games: {', '.join(no_box)}", file=sys.stderr)
    if failed:
        print(f"fastcam eval: {len(failed)} image(s) not evaluated:", file=sys.stderr)
        for n, why in failed:
            print(f"  {n}: {why}", file=sys.stderr)
    return 0


@usage_errors("explain")
def run_explain(args: argparse.Namespace) -> int:
    """``fastcam explain``: 0 when every image was explained, 1 when some could
    not be read (the others are written), 2 on a usage error."""
    from ..api import explain
    from ..methods import METHODS
    from ..visualize import overlay

    method = parse_list(args.method, "methods", list(METHODS))
    if len(method) != 1:
        raise UsageError("--method takes one method (fastcam eval compares several)")
    method = method[0]
    options = _options(args.option, [method]).get(method, {})
    target: Optional[int] = None
    if str(args.target).lower() != "predicted":
        if not str(args.target).isdigit():
            raise UsageError(f"--target {args.target!r}: 'predicted' or a class index")
        target = int(args.target)
    check_common(args)
    paths = [str(p) for p in args.images]
    loaded, normalize = _setup(args)
    batch = load_images(paths, paths, args.size)
    failed = batch.failed
    if not batch.names:
        for n, why in failed:
            print(f"fastcam explain: {n}: {why}", file=sys.stderr)
        raise UsageError("none of the images could be read")
    x = batch.x.to(args.device)
    probs = predict(loaded.model, x, normalize)
    top_p, top_c = probs.max(1)
    targets = top_c if target is None else torch.full_like(top_c, target)
    if target is not None and target >= probs.shape[1]:
        raise UsageError(f"--target {target}: the model has {probs.shape[1]} classes")
    t0 = time.perf_counter()
    maps = explain(loaded.model, x, method, [loaded.layer], targets, normalize=normalize, **options)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{loaded.name}, {method}, {len(batch.names)} image(s) in {seconds:.2f} s:")
    stems = {}
    for i, name in enumerate(batch.names):
        stem = Path(name).stem
        stems[stem] = stems.get(stem, 0) + 1
        if stems[stem] > 1:
            stem = f"{stem}_{stems[stem]}"
        png, npy = out / f"{stem}_{method}.png", out / f"{stem}_{method}.npy"
        overlay(x[i].cpu(), maps[i].cpu()).save(png)
        np.save(npy, maps[i].cpu().numpy())
        c, p = int(top_c[i]), float(top_p[i])
        shown = f"predicted {_class_name(c)} (p={p:.3f})"
        if target is not None:
            shown += f", explained class {target} {_class_name(target)}"
        print(f"  {name:<24} {shown}  -> {png.name}, {npy.name}")
    if failed:
        print(f"fastcam explain: {len(failed)} image(s) not explained:", file=sys.stderr)
        for n, why in failed:
            print(f"  {n}: {why}", file=sys.stderr)
        return 1
    return 0


@usage_errors("photos")
def run_photos(args: argparse.Namespace) -> int:
    """``fastcam photos``: write the bundled real photos as PNG files at their
    original resolution (the input of the committed ``fastcam eval`` run)."""
    from PIL import Image

    from ..data import PHOTO_NAMES, photo_array

    check_common(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in PHOTO_NAMES:
        path = out / f"{name}.png"
        Image.fromarray(np.asarray(photo_array(name))).save(path)
        print(f"wrote {path}")
    return 0
