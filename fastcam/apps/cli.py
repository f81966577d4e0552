"""The ``fastcam`` command line: class activation maps for PyTorch CNN classifiers.
``fastcam demo`` explains real photos with the bundled pretrained EfficientNet-Lite0
with every method and writes a PNG grid of overlays; ``fastcam explain`` writes
overlays and raw maps for image files; ``fastcam eval`` compares methods on metrics
over an image folder; ``fastcam photos`` writes the bundled real photos as image
files; ``fastcam generate`` fills a Zarr store; ``fastcam bench`` times the methods
on this machine against the peer libraries.

A method option is ``-o KEY=VALUE`` (every method given) or ``-o METHOD.KEY=VALUE``
(one method), in every command."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence

from .._version import __version__
from ..errors import UsageError
from .arguments import (DEVICE_HELP, PRECISIONS, HelpFormatter, add_bench_arguments, add_eval_arguments,
                        add_explain_arguments, add_option_argument, add_photos_arguments, plain_text)
from .options import check_common, options_for, usage_errors

if TYPE_CHECKING:     # torch is imported when a command runs, not for the parser
    import torch

#: the demo's grid: the eight seed-paper methods, in docs/getting-started.md's order ("The demo")
DEFAULT_DEMO_METHODS = ("cam", "gradcam", "gradcam++", "scorecam", "liftcam", "opticam", "shapcam",
                        "advise")
#: the demo's budgets, smaller than the papers' so that the whole grid takes under two
#: minutes on a 2-core CPU; shown in the header and in the column titles, and
#: overridden by ``-o`` (``-o opticam.max_iter=100`` is the paper's)
DEMO_OPTIONS = {"opticam": {"max_iter": 50}}
#: how the demo's budgets read in its column titles
_BUDGET_WORDS = {"max_iter": "iterations", "permutations": "permutations"}
#: photos in the demo's grid by default (of the 8 bundled)
DEMO_PHOTOS = 3


def resolve_demo_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """(precision, why): ``"auto"`` is bf16 where ``device`` runs it natively
    (:func:`fastcam.engine.check_precision`), else fp32; a precision named
    explicitly is checked (:class:`UsageError` if the device cannot run it)."""
    from ..preflight import check_precision

    if precision != "auto":
        return check_precision(precision, device), "as asked"
    try:
        check_precision("bf16", device)
    except UsageError:
        return "fp32", f"auto: {device.type} has no native bf16"
    return "bf16", f"auto: {device.type} runs bf16 natively; --precision fp32 for full precision"


def _demo_budgets(methods: Sequence[str], items) -> dict[str, dict]:
    """Method -> its options: :data:`DEMO_OPTIONS` updated by the ``-o`` items
    (:func:`~fastcam.apps.options.options_for`), each checked against the
    method's keyword options."""
    from ..generation.config import RUN_ARGUMENTS, method_spec

    options = options_for(items, methods, base=DEMO_OPTIONS)
    for method, opts in options.items():
        method_spec(method, opts, run_arguments=tuple(RUN_ARGUMENTS))
    return options


def _budget_text(options: dict) -> str:
    return ", ".join(f"{v} {_BUDGET_WORDS.get(k, k)}" if k in _BUDGET_WORDS else f"{k}={v}"
                     for k, v in options.items())


@usage_errors("demo")
def _demo(args: argparse.Namespace) -> int:
    """Explain the bundled real photos with EfficientNet-Lite0 (ImageNet weights)
    with every method and write a PNG grid (one row per photo, one column per
    method). By default on 3 photos, in fp32 (``--precision auto``: bf16 where the
    device runs it natively), with Opti-CAM at 50 iterations (the paper: 100): the
    header and the figure say which."""
    import torch

    from .. import models
    from ..api import explain
    from ..data import IMAGENET_CLASSES, PHOTO_NAMES, load_photos
    from ..evaluation.runner import parse_list, predict
    from ..methods import METHODS
    from ..visualize import save_grid

    methods = parse_list(args.methods, "methods", list(METHODS))
    options = _demo_budgets(methods, args.option)
    if not 1 <= args.photos <= len(PHOTO_NAMES):
        raise UsageError(f"--photos {args.photos}: between 1 and {len(PHOTO_NAMES)} (the bundled photos)")
    check_common(args)
    device = torch.device(args.device)
    precision, why = resolve_demo_precision(args.precision, device)
    x, names = load_photos(size=args.size)
    x, names = x[:args.photos].to(device), names[:args.photos]
    model = models.efficientnet_lite0(pretrained=True).to(device).eval()
    normalize = model.normalization
    top_p, top_c = predict(model, x, normalize).max(1)
    print(f"EfficientNet-Lite0 (ImageNet weights) on {len(names)} of the {len(PHOTO_NAMES)} bundled photos "
          f"at {args.size}x{args.size}, device {device}, precision {precision} ({why}); "
          f"{len(methods)} methods: " + ", ".join(
              m + (f" ({_budget_text(options[m])})" if options[m] else "") for m in methods))
    labels = []
    for name, p, c in zip(names, top_p.tolist(), top_c.tolist()):
        print(f"  {name:<14} {IMAGENET_CLASSES[c]:<24} p={p:.3f} (fp32)")
        labels.append(f"{name}\n{IMAGENET_CLASSES[c]} {p:.2f}")
    cams, titles = {}, []
    t_all = time.perf_counter()
    for method in methods:
        t0 = time.perf_counter()
        opts = {**options[method], **({"precision": precision} if precision != "fp32" else {})}
        cams[method] = explain(model, x, method, targets=top_c, normalize=normalize, **opts).cpu()
        print(f"  {method:<10} {len(names)} maps in {time.perf_counter() - t0:.2f} s", flush=True)
        titles.append(method + (f"\n{_budget_text(options[method])}" if options[method] else ""))
    print(f"  all methods: {time.perf_counter() - t_all:.1f} s")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "demo_grid.png"
    save_grid(path, x.cpu(), cams, row_labels=labels, col_labels=titles,
              title=f"EfficientNet-Lite0, {device.type}, precision {precision}; classes predicted in fp32")
    print(f"wrote {path.resolve()}")
    return 0


@usage_errors("explain")
def _explain(args: argparse.Namespace) -> int:
    """``fastcam explain`` with ``--precision``: the method's ``precision`` option
    (the same as ``-o METHOD.precision=...``, which may not say otherwise),
    checked against the device before any work."""
    import torch

    from ..preflight import check_precision
    from . import evaluate as ev

    if args.precision is not None:
        check_common(args)
        check_precision(args.precision, torch.device(args.device))
        method = str(args.method).strip().lower()
        given = {v for m, k, v in args.option if m in (method, None) and k == "precision"}
        if given - {args.precision}:
            raise UsageError(f"--precision {args.precision} and -o {method}.precision={given.pop()} disagree")
        if args.precision != "fp32" and not given:
            args.option = [*args.option, (method, "precision", args.precision)]
    return ev.run_explain(args)


def _demo_arguments(demo: argparse.ArgumentParser) -> None:
    demo.description = plain_text(_demo.__doc__)
    demo.add_argument("--out", default="fastcam-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--methods", default=",".join(DEFAULT_DEMO_METHODS),
                      help="comma-separated methods, one column each (default: %(default)s)")
    demo.add_argument("--photos", type=int, default=DEMO_PHOTOS,
                      help="how many of the 8 bundled photos, one row each (default: %(default)s)")
    demo.add_argument("--size", type=int, default=224, help="input and map size (default: %(default)s)")
    demo.add_argument("--precision", default="fp32", choices=("auto", *PRECISIONS),
                      help="how the model runs: fp32 (default), auto (bf16 where the device runs it "
                           "natively, else fp32), bf16 or fp16 (an error if the device cannot run it)")
    add_option_argument(demo, "opticam.max_iter=100 (the paper's; the demo's budgets: "
                        + "; ".join(f"{m}: {_budget_text(o)}" for m, o in DEMO_OPTIONS.items()) + ")")
    demo.add_argument("--device", default=None, help=DEVICE_HELP)
    demo.set_defaults(func=_demo)


def _generate_arguments(gen: argparse.ArgumentParser) -> None:
    from .generate import add_arguments

    gen.description = ("Saliency maps for every image of a folder or path list into one Zarr store; "
                       "re-running resumes; under torchrun each rank takes a disjoint share.")
    add_arguments(gen)
    gen.set_defaults(func=_generate)


def _generate(args: argparse.Namespace) -> int:
    """``fastcam generate`` with its ``-o`` items resolved for its one method."""
    from .generate import run_cli

    try:
        options = options_for(args.option, [str(args.method).strip().lower()])
    except UsageError as e:
        print(f"fastcam generate: error: {e}", file=sys.stderr)
        return 2
    args.option = list(options.popitem()[1].items())
    return run_cli(args)


def _explain_arguments(exp: argparse.ArgumentParser) -> None:
    exp.description = ("Explain image files with one method: writes NAME_METHOD.png (the overlay over "
                       "the whole image, titled with the explained class and its probability) and "
                       "NAME_METHOD.npy (the (size, size) map of the model's input, in [0, 1]) per image "
                       "and prints the predicted classes.")
    add_explain_arguments(exp)
    exp.set_defaults(func=_explain)


def _eval_arguments(evp: argparse.ArgumentParser) -> None:
    evp.description = ("Run every method on every image (batched) and every metric on every map; "
                       "write eval_table.md/.csv (mean and 95% Student-t interval, seconds per image), "
                       "eval_per_image.csv, eval_timings.json, eval_command.txt.")
    add_eval_arguments(evp)
    evp.set_defaults(func=_command("evaluate", "run_eval"))


def _photos_arguments(pho: argparse.ArgumentParser) -> None:
    pho.description = ("Write the bundled real photos as PNG files at their original resolution "
                       "(the input of the committed fastcam eval run).")
    add_photos_arguments(pho)
    pho.set_defaults(func=_command("evaluate", "run_photos"))


def _bench_arguments(ben: argparse.ArgumentParser) -> None:
    ben.description = ("Time fastcam's methods on this machine: images/s, ms per image (median and IQR "
                       "of the timed calls, warm-up excluded, CUDA-synchronised), peak memory, and the "
                       "speed-up against each installed peer library computing the same map "
                       "(pytorch-grad-cam, TorchCAM, Captum; --peers). Writes bench.json and bench.png.")
    add_bench_arguments(ben)
    ben.set_defaults(func=_command("bench", "run_bench"))


def _command(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The command ``fastcam.apps.<module>.<name>``, imported when it runs (the
    modules that run commands import torch; the parser must not)."""
    def run(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(f".{module}", __package__), name)(args)
    return run


#: the subcommands: name -> (one-line help, the function adding its options)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "demo": ("explain real photos with the bundled pretrained model", _demo_arguments),
    "generate": ("saliency maps for a whole image folder into a resumable Zarr store (one process "
                 "or torchrun)", _generate_arguments),
    "explain": ("heat-map overlays (PNG) and raw maps (.npy) for image files", _explain_arguments),
    "eval": ("compare methods on metrics over an image folder", _eval_arguments),
    "photos": ("write the bundled real photos as PNG files", _photos_arguments),
    "bench": ("time the methods on this machine against the installed peer libraries", _bench_arguments),
}


def build_parser(commands: Optional[Iterable[str]] = None) -> argparse.ArgumentParser:
    """The ``fastcam`` parser. The options of the subcommands in ``commands``
    (None: all) are added; the others are listed by name and help only, so that
    ``fastcam --help`` imports neither torch nor the library (:func:`main` adds
    the options of the command it runs)."""
    wanted = set(COMMANDS if commands is None else commands)
    parser = argparse.ArgumentParser(prog="fastcam", description=plain_text(__doc__),
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"fastcam {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_options) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, formatter_class=HelpFormatter)
        if name in wanted:
            add_options(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``fastcam`` command. Called without ``argv`` (the command itself, or
    ``python -m fastcam``), it owns its process and sets glibc's malloc for it
    (:mod:`fastcam.allocator`); called with ``argv`` from a program, it does not."""
    if argv is None:
        from ..allocator import tune_malloc

        tune_malloc()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser([command] if command in COMMANDS else []).parse_args(argv)
    args.argv = argv
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
