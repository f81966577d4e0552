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
from typing import Optional

import numpy as np
import torch

from ..errors import UsageError
from ..evaluation.claims import applicable, claims_table, judge
from ..evaluation.files import (check_label_range, list_image_names, load_images,
                                match_boxes, match_labels, read_box_rows, read_label_rows, transform_boxes)
from ..evaluation.parts import PartStore
from ..evaluation.published import PAPER_CLAIMS, PUBLISHED, published_comparison
from ..evaluation.runner import METRICS, evaluate, parse_list, predict
from ..evaluation.tables import class_name, describe_normalize, markdown_table, write_outputs
from ..models.loading import load_model
from ..preflight import check_precision, count_classes, resolve_normalize
from ..generation.decode import preprocessing_record
from .arguments import DEFAULT_EVAL_METHODS
from .options import check_common, options_for, usage_errors

def _class_name(c: int) -> str:
    return class_name(c, unknown="class {}")


def _options(items, methods) -> dict[str, dict]:
    """Method -> its ``-o`` options (:func:`~fastcam.apps.options.options_for`), each
    checked against the method's keyword options."""
    from ..generation.config import method_spec

    out = options_for(items, methods)
    for method, opts in out.items():
        if opts:
            method_spec(method, opts)
    return out


def _setup(args, hash_weights: bool = False):
    loaded = load_model(args.model, args.weights, layer=args.layer, size=args.size, device=args.device,
                        hash_weights=hash_weights)
    return loaded, resolve_normalize(args.normalize, loaded)


def _open_stores(items: list[str]) -> list:
    """``--maps [METHOD=]STORE`` items, opened (one store per method)."""
    from ..evaluation.stored import open_stored

    stores = []
    for item in items:
        name, sep, location = item.partition("=")
        if not sep or os.path.exists(item):
            name, location = None, item
        stores.append(open_stored(location, name))
    seen: dict[str, str] = {}
    for st in stores:
        if st.method in seen:
            raise UsageError(f"--maps: {seen[st.method]} and {st.location} both hold {st.method} maps")
        seen[st.method] = st.location
    return stores


@usage_errors("eval")
def run_eval(args: argparse.Namespace) -> int:
    """``fastcam eval``: 0 when the table was written (failed images reported), 2 on a usage error."""
    from ..methods import METHODS

    stores = _open_stores(args.maps)
    if stores and args.methods is not None:
        raise UsageError("--methods with --maps: the methods are the stores' (one --maps per method)")
    if stores and args.option:
        raise UsageError("-o with --maps: the stored maps were computed with the options their store records")
    methods = ([st.method for st in stores] if stores
               else parse_list(args.methods or DEFAULT_EVAL_METHODS, "methods", list(METHODS)))
    metrics = parse_list(args.metrics, "metrics", [*METRICS, "sanity"])
    sanity = "sanity" in metrics
    metrics = [k for k in metrics if k != "sanity"]
    if args.sanity_steps < 1:
        raise UsageError(f"--sanity-steps must be >= 1, got {args.sanity_steps}")
    if args.sanity_layers not in ("cascade", "independent"):
        raise UsageError(f"--sanity-layers {args.sanity_layers!r}: cascade or independent")
    if args.published is not None and args.published not in PUBLISHED:
        raise UsageError(f"--published {args.published!r}: choose from {sorted(PUBLISHED)}")
    options = ({st.method: st.meta["options"] for st in stores} if stores
               else _options(args.option, methods))
    if any(METRICS[k].needs_boxes for k in metrics) and not args.boxes:
        raise UsageError(f"metric(s) {[k for k in metrics if METRICS[k].needs_boxes]} need --boxes FILE")
    check_common(args)
    precision = check_precision(args.precision, args.device)
    root, names = list_image_names(args.images)
    label_rows = read_label_rows(args.labels) if args.labels else None
    box_rows = read_box_rows(args.boxes) if args.boxes else None
    loaded, normalize = _setup(args, hash_weights=bool(stores))
    if label_rows is not None:
        check_label_range(args.labels, label_rows, count_classes(loaded, args.size))
    preprocess = preprocessing_record(args.preprocess, args.size)
    for st in stores:
        st.check(model=loaded.name, weights=loaded.weights, layer=loaded.layer, size=args.size,
                 preprocess=preprocess, normalize=normalize,
                 metrics=metrics)
    t_load = time.perf_counter()
    batch = load_images([os.path.join(root, n) for n in names], names, args.size, args.preprocess)
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
        boxes = [transform_boxes(boxes_by_name.get(n, []), batch.sizes[i], args.size, args.preprocess)
                 for n, i in zip(names_ok, keep)]
        no_box = [n for n, b in zip(names_ok, boxes) if not b]
    top1 = ""
    if labels is not None:
        hits = sum(int(p == t) for p, t in zip(predicted, targets))
        top1 = f"; top-1 {100 * hits / len(targets):.1f}% ({hits}/{len(targets)})"
    for st in stores:
        st.select([os.path.join(root, n) for n in names_ok], targets)
    preprocessing = (f"resize to {args.size}×{args.size}" if args.preprocess == "resize" else
                     f"resize to {round(args.size * 256 / 224)}, centre crop {args.size}")
    print(f"fastcam eval: {loaded.name} (layer {loaded.layer}), {len(names_ok)} image(s), "
          f"targets: {'labels ' + args.labels if labels is not None else 'predicted class'}{top1}; "
          f"preprocess: {preprocessing}; normalize: {describe_normalize(normalize)}")
    for st in stores:
        print(f"  maps: {st.describe()}")
    for n, t, p in zip(names_ok, targets, predicted):
        print(f"  {n:<24} target {t:>4} {_class_name(t):<22} predicted {_class_name(p)}")
    manifest = {"images": names_ok, "targets": targets, "methods": methods, "metrics": metrics,
                "options": options, "model": loaded.name,
                "weights": os.path.basename(args.weights) if args.weights else None, "layer": loaded.layer,
                "normalize": normalize, "size": args.size,
                "preprocess": preprocess, "precision": precision,
                "maps": {st.method: {"store": os.path.abspath(st.location), "kind": st.kind,
                                     "paths_sha256": st.meta.get("paths_sha256"),
                                     "precision": st.meta.get("precision")} for st in stores},
                "steps": args.steps, "batch_size": args.batch_size, "metric_batch_size": args.metric_batch_size}
    chunks = -(-len(names_ok) // args.batch_size)
    parts = PartStore.open(args.out, manifest, metrics, total=chunks * len(methods), resume=args.resume)
    result = evaluate(loaded.model, x, names_ok, targets, methods, metrics, layer=loaded.layer,
                      normalize=normalize, boxes=boxes, batch_size=args.batch_size,
                      metric_batch_size=args.metric_batch_size, steps=args.steps, method_options=options,
                      progress=not args.no_progress, predicted=predicted, precision=precision, parts=parts,
                      stored={st.method: st.source for st in stores})
    if result.resumed_parts:
        print(f"resumed: {result.resumed_parts} of {chunks * len(methods)} part(s) read back from {parts.folder}")
    result.failed = failed
    header = (f"`{loaded.name}` (layer `{loaded.layer}`), {len(names_ok)} images, targets: "
              f"{'ground-truth labels' if labels is not None else 'predicted class'}{top1}; "
              f"preprocess: {preprocessing}; normalize: "
              f"{describe_normalize(normalize)}; precision {precision}"
              + (f"; maps read from `fastcam generate` stores ({', '.join(st.kind for st in stores)}), "
                 "method times as the stores recorded them" if stores else "") + ".")
    argv = getattr(args, "argv", None)
    command = "fastcam " + shlex.join(argv) if argv is not None else "fastcam eval (called from Python)"
    extra = {"load_seconds": load_s, "torch": torch.__version__, "threads": torch.get_num_threads(),
             "cpu_count": os.cpu_count(), "machine": platform.machine(), "device": str(args.device),
             "precision": precision, "preprocess": args.preprocess, "resumed_parts": result.resumed_parts,
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
    claims = applicable(PAPER_CLAIMS, methods, metrics)
    if claims:
        text = ("Papers' claims, from the paired per-image differences (method − rival) and their 95% "
                "Student-t interval on these images; published numbers are for other models and images.\n\n"
                + claims_table(judge(result, claims)))
        paths["claims"] = Path(args.out) / "eval_claims.md"
        paths["claims"].write_text(text, encoding="utf-8")
        print(text)
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
        c, p = int(top_c[i]), float(top_p[i])
        explained = c if target is None else target
        title = f"{_class_name(explained)} (class {explained}), p={float(probs[i, explained]):.3f} - {method}"
        whole_image_overlay(name, maps[i].cpu(), title).save(png)
        np.save(npy, maps[i].cpu().numpy())
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


def whole_image_overlay(path: str, cam: torch.Tensor, title: str):
    """The overlay of ``cam`` (on the model's ``(size, size)`` input) drawn over the
    whole image at ``path``, at its own resolution: the map carried back through the
    crop and the resize (:func:`fastcam.data.uncrop`), the pixels outside the crop
    left as they are; ``title`` on a white band above. A PIL image."""
    from PIL import Image, ImageDraw, ImageFont

    from ..data import read_image, to_rgb_float, uncrop
    from ..visualize import overlay

    image = torch.from_numpy(to_rgb_float(read_image(path)))          # (H, W, 3) in [0, 1]
    h, w = image.shape[:2]
    full, inside = uncrop(cam, h, w)
    blended = torch.from_numpy(np.array(overlay(image.permute(2, 0, 1), full)))   # writable
    original = (image * 255).round().to(torch.uint8)
    pixels = torch.where(inside[..., None], blended, original).numpy()
    band = max(18, h // 18)
    font = ImageFont.load_default(size=int(band * 0.7))
    canvas = Image.new("RGB", (w, h + band), "white")
    canvas.paste(Image.fromarray(pixels), (0, band))
    ImageDraw.Draw(canvas).text((4, band // 2), title, fill="black", font=font, anchor="lm")
    return canvas


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
