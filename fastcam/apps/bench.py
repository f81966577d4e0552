"""``fastcam bench``: fastcam's methods timed on this machine, beside the peer
libraries that compute the same maps (pytorch-grad-cam, TorchCAM, Captum: those
installed), on the bundled photos (repeated to the batch size) with the targets
the model predicts. Writes ``bench.json`` (every row, the machine, the command)
and ``bench.png`` (images/s per method, a bar per library and precision).

Peers run in fp32 (they have no precision option) on the normalised batch, as
their users call them; fastcam runs with ``normalize`` on the [0, 1] batch. Which
peer call matches which method is :data:`PEERS` (the pairs of
``benchmarks/bench_peer_methods.py`` and ``bench_precision.py``); TorchCAM returns
its maps at the layer's resolution (not upsampled), as it does for its users."""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import shlex
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from .._version import __version__
from ..backend import resolve, use_backend
from ..errors import UsageError
from ..evaluation.runner import parse_list, predict
from ..evaluation.timing import time_calls
from ..inputs import normalizer
from ..methods import METHODS
from ..models.loading import load_model
from ..preflight import PRECISION_CHOICES, build_explainer, check_precision, resolve_normalize
from .evaluate import _options
from .options import check_common, usage_errors

#: fastcam method -> pytorch-grad-cam's class of the same map
PGC = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "scorecam": "ScoreCAM",
       "ablationcam": "AblationCAM", "xgradcam": "XGradCAM", "hirescam": "HiResCAM",
       "gradcam-elementwise": "GradCAMElementWise", "layercam": "LayerCAM", "eigencam": "EigenCAM",
       "eigengradcam": "EigenGradCAM", "kpcacam": "KPCA_CAM", "fullgrad": "FullGrad",
       "shapleycam": "ShapleyCAM", "fem": "FEM"}
#: fastcam method -> TorchCAM's class of the same map
TORCHCAM = {"cam": "CAM", "gradcam": "GradCAM", "gradcam++": "GradCAMpp", "scorecam": "ScoreCAM",
            "sscam": "SSCAM", "iscam": "ISCAM", "smoothgradcampp": "SmoothGradCAMpp",
            "xgradcam": "XGradCAM", "layercam": "LayerCAM"}
#: TorchCAM's methods that run without gradients
TORCHCAM_NO_GRAD = ("CAM", "ScoreCAM", "SSCAM", "ISCAM")
#: fastcam method -> Captum's call computing the same map
CAPTUM = {"gradcam": "LayerGradCam"}


def _pgc(cls_name: str, model, layer: str, x, targets) -> Callable[[], Any]:
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    cam = getattr(pytorch_grad_cam, cls_name)(model=model, target_layers=[model.get_submodule(layer)])
    tg = [ClassifierOutputTarget(int(t)) for t in targets]
    return lambda: cam(input_tensor=x, targets=tg)


def _torchcam(cls_name: str, model, layer: str, x, targets) -> Callable[[], Any]:
    import torchcam.methods

    extractor = getattr(torchcam.methods, cls_name)(model, target_layer=layer)
    grad = cls_name not in TORCHCAM_NO_GRAD
    classes = [int(t) for t in targets]

    def run():
        with torch.set_grad_enabled(grad):
            return extractor(classes, model(x))
    run.close = extractor.remove_hooks          # type: ignore[attr-defined]
    return run


def _captum(cls_name: str, model, layer: str, x, targets) -> Callable[[], Any]:
    from captum.attr import LayerAttribution, LayerGradCam

    gc = LayerGradCam(model, model.get_submodule(layer))

    def run():
        m = gc.attribute(x, target=targets, relu_attributions=True)
        return LayerAttribution.interpolate(m, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return run


#: peer library -> (its import name, fastcam method -> its class, the call's builder)
PEERS: dict[str, tuple[str, dict[str, str], Callable]] = {
    "pytorch-grad-cam": ("pytorch_grad_cam", PGC, _pgc),
    "torchcam": ("torchcam", TORCHCAM, _torchcam),
    "captum": ("captum", CAPTUM, _captum),
}


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _print_row(row: dict) -> None:
    t = row["ms_per_image"]
    mem = f"{row['peak_memory_mib']:8.0f} MiB" if row["peak_memory_mib"] is not None else "       -    "
    speed = ", ".join(f"{v:.2f}x vs {k}" for k, v in row.get("speedup", {}).items())
    print(f"  {row['method']:<20} {row['library']:<17} {row['precision']:<5} {row['images_per_s']:9.2f} img/s "
          f"{t['median']:9.2f} ms/img (IQR {t['iqr']:.2f}) {mem}  {speed}", flush=True)


def write_chart(path: Path, rows: list[dict], title: str) -> None:
    """A horizontal grouped bar chart: images/s per method, one bar per library and precision."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    methods = list(dict.fromkeys(r["method"] for r in rows))
    series = list(dict.fromkeys((r["library"], r["precision"]) for r in rows))
    height = 0.8 / len(series)
    fig = Figure(figsize=(8, 1.0 + 0.45 * len(methods) * max(1, len(series)) ** 0.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for j, (library, precision) in enumerate(series):
        by_method = {r["method"]: r["images_per_s"] for r in rows
                     if r["library"] == library and r["precision"] == precision}
        ys = [i + j * height for i, m in enumerate(methods) if m in by_method]
        ax.barh(ys, [by_method[m] for m in methods if m in by_method], height=height,
                label=f"{library} {precision}")
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(methods))], methods)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("images per second (log scale; higher is faster)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


@usage_errors("bench")
def run_bench(args: argparse.Namespace) -> int:
    """``fastcam bench``: 0 when every row was measured, 1 when some peer call failed
    (reported and recorded under ``skipped``), 2 on a usage error."""
    methods = parse_list(args.methods, "methods", list(METHODS))
    precisions = parse_list(args.precision, "precisions", list(PRECISION_CHOICES))
    if args.batch_size < 1 or args.repeats < 1 or args.warmup < 0:
        raise UsageError("--batch-size and --repeats must be >= 1, --warmup >= 0")
    options = _options(args.option, methods)
    check_common(args)
    device = torch.device(args.device)
    for precision in precisions:
        check_precision(precision, device)
    with use_backend(args.backend):
        try:
            backend = resolve(device)
        except RuntimeError as e:
            raise UsageError(f"--backend {args.backend}: {e}") from None
        return _measure(args, methods, precisions, options, device, backend)


def _measure(args: argparse.Namespace, methods: list[str], precisions: list[str], options: dict,
             device: torch.device, backend: str) -> int:
    from ..data import load_photos

    loaded = load_model(args.model, args.weights, layer=args.layer, size=args.size, device=args.device,
                        hash_weights=False)
    model, layer = loaded.model, loaded.layer
    normalize = resolve_normalize("imagenet", loaded)
    photos, _ = load_photos(size=args.size)
    x = photos[torch.arange(args.batch_size) % len(photos)].to(device)
    targets = predict(model, x, normalize).argmax(1)
    x_normalized = normalizer(normalize, x)(x)
    header = {"fastcam": __version__, "torch": torch.__version__, "python": platform.python_version(),
              "device": str(device),
              "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                              else platform.processor() or platform.machine()),
              "backend": backend, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
              "model": loaded.name, "layer": layer, "batch_size": args.batch_size, "size": args.size, "repeats": args.repeats,
              "warmup": args.warmup, "precisions": precisions, "options": options,
              "command": "fastcam " + shlex.join(getattr(args, "argv", []) or ["bench"])}
    print(f"fastcam bench: {loaded.name} (layer {layer}), batch {args.batch_size} at {args.size}px on "
          f"{header['device_name']} ({device}, backend {backend}), {args.warmup} warm-up + {args.repeats} "
          "timed calls per row")
    rows, skipped = [], []
    for method in methods:
        for precision in precisions:
            cam = build_explainer(METHODS[method], model, layer, normalize, options.get(method), precision)
            timing = time_calls(lambda: cam(x, targets), batch=args.batch_size, device=device,
                                repeats=args.repeats, warmup=args.warmup)
            rows.append({"method": method, "library": "fastcam", "precision": precision, **timing.as_dict()})
            _print_row(rows[-1])
        if not args.peers:
            continue
        for library, (module, classes, build) in PEERS.items():
            if method not in classes:
                continue
            if not _installed(module):
                skipped.append({"method": method, "library": library,
                                "why": f"not installed (pip install 'fastcam[peers]')"})
                continue
            try:
                run = build(classes[method], model, layer, x_normalized, targets)
                try:
                    # pytorch-grad-cam's Score-CAM draws a progress bar per call on stderr
                    with contextlib.redirect_stderr(io.StringIO()):
                        timing = time_calls(run, batch=args.batch_size, device=device, repeats=args.repeats,
                                            warmup=args.warmup)
                finally:
                    getattr(run, "close", lambda: None)()
            except Exception as e:  # noqa: BLE001 -- a peer failing on this model is reported, not fatal
                skipped.append({"method": method, "library": library, "why": f"{type(e).__name__}: {e}"[:300]})
                print(f"  {method:<20} {library:<17} failed: {skipped[-1]['why']}", file=sys.stderr)
                continue
            peer = {"method": method, "library": library, "precision": "fp32", **timing.as_dict()}
            rows.append(peer)
            _print_row(peer)
    for row in rows:
        if row["library"] == "fastcam":
            row["speedup"] = {p["library"]: p["ms_per_image"]["median"] / row["ms_per_image"]["median"]
                              for p in rows if p["library"] != "fastcam" and p["method"] == row["method"]}
    if device.type == "cpu":
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss         # KiB on Linux, bytes on macOS
        header["process_peak_rss_mib"] = rss / (2**20 if sys.platform == "darwin" else 1024)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps({**header, "rows": rows, "skipped": skipped}, indent=2) + "\n",
                                    encoding="utf-8")
    write_chart(out / "bench.png", rows, f"{loaded.name}, batch {args.batch_size} at {args.size}px, "
                                         f"{header['device_name']} ({device})")
    print("speed-up = the peer's median ms per image / fastcam's")
    print(f"wrote {out / 'bench.json'}\nwrote {out / 'bench.png'}")
    failed = [s for s in skipped if not s["why"].startswith("not installed")]
    return 1 if failed else 0
