"""The ``fastcam`` command line. ``fastcam demo`` explains real photos with the
bundled pretrained EfficientNet-Lite0 and writes a PNG grid of overlays;
``fastcam explain`` writes overlays and raw maps for image files; ``fastcam eval``
compares methods on metrics over an image folder; ``fastcam photos`` writes the
bundled real photos as image files; ``fastcam generate`` fills a Zarr store."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from .evaluate.commands import check_common, usage_errors

DEFAULT_DEMO_METHODS = ("cam", "gradcam", "gradcam++", "liftcam", "shapcam")


@usage_errors("demo")
def _demo(args: argparse.Namespace) -> int:
    """Explain the bundled real photos with EfficientNet-Lite0 (ImageNet weights)
    and write a PNG grid."""
    from . import explain, models
    from .data import IMAGENET_CLASSES, load_photos
    from .evaluate.runner import parse_list, predict
    from .methods import METHODS
    from .visualize import save_grid

    methods = parse_list(args.methods, "methods", list(METHODS))
    check_common(args)
    device = torch.device(args.device)
    model = models.efficientnet_lite0(pretrained=True).to(device).eval()
    x, names = load_photos()
    x = x.to(device)
    normalize = model.normalization
    top_p, top_c = predict(model, x, normalize).max(1)
    labels = []
    print(f"EfficientNet-Lite0 (ImageNet weights) on {len(names)} photos, device {device}:")
    for name, p, c in zip(names, top_p.tolist(), top_c.tolist()):
        print(f"  {name:<14} {IMAGENET_CLASSES[c]:<24} p={p:.3f}")
        labels.append(f"{name}\n{IMAGENET_CLASSES[c]} {p:.2f}")
    cams = {}
    for method in methods:
        t0 = time.perf_counter()
        cams[method] = explain(model, x, method, targets=top_c, normalize=normalize).cpu()
        print(f"  {method:<10} {len(names)} maps in {time.perf_counter() - t0:.2f} s")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "demo_grid.png"
    save_grid(path, x.cpu(), cams, row_labels=labels)
    print(f"wrote {path.resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastcam", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="explain real photos with the bundled pretrained model",
                          description=_demo.__doc__)
    demo.add_argument("--out", default="fastcam-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--methods", default=",".join(DEFAULT_DEMO_METHODS),
                      help="comma-separated methods, one column each (default: %(default)s)")
    demo.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    demo.set_defaults(func=_demo)
    from .generate.command import add_arguments as _generate_arguments, run_cli as _generate_run
    gen = sub.add_parser("generate", help="saliency maps for a whole image folder into a resumable "
                         "Zarr store (one process or torchrun)",
                         description="Saliency maps for every image of a folder or path list into one "
                         "Zarr store; re-running resumes; under torchrun each rank takes a disjoint share.")
    _generate_arguments(gen)
    gen.set_defaults(func=_generate_run)
    from .evaluate import commands as ev

    exp = sub.add_parser("explain", help="heat-map overlays (PNG) and raw maps (.npy) for image files",
                         description="Explain image files with one method: writes NAME_METHOD.png "
                         "(overlay) and NAME_METHOD.npy (the (H, W) map in [0, 1]) per image and "
                         "prints the predicted classes.")
    ev.add_explain_arguments(exp)
    exp.set_defaults(func=ev.run_explain)
    evp = sub.add_parser("eval", help="compare methods on metrics over an image folder",
                         description="Run every method on every image (batched) and every metric on "
                         "every map; write eval_table.md/.csv (mean and 95%% Student-t interval, "
                         "seconds per image), eval_per_image.csv, eval_timings.json, eval_command.txt.")
    ev.add_eval_arguments(evp)
    evp.set_defaults(func=ev.run_eval)
    pho = sub.add_parser("photos", help="write the bundled real photos as PNG files",
                         description=ev.run_photos.__doc__)
    ev.add_photos_arguments(pho)
    pho.set_defaults(func=ev.run_photos)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
