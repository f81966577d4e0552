"""``fastcam generate`` on the command line: its options and :func:`run_cli`,
which calls :func:`fastcam.generation.generate` (or
:func:`~fastcam.generation.verify.verify_store` with ``--verify``)."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import UsageError
from ..generation.config import DTYPES
from ..generation.fingerprint import FINGERPRINTS
from ..generation.run import generate
from ..generation.verify import verify_store
from ..models.loading import BUNDLED
from ..preflight import PRECISION_CHOICES
from .options import OPTION_HELP, key_value, method_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``fastcam generate`` options."""
    a = parser.add_argument
    a("--images", default=None, help="folder of images (recursive) or a text file of paths")
    a("--method", default="gradcam", help="explainer name (default: %(default)s)")
    a("-o", "--option", action="append", type=method_option, default=[], metavar="[METHOD.]KEY=VALUE",
      help=f"{OPTION_HELP}; e.g. -o max_iter=50")
    a("--model", default=BUNDLED, help=f"{BUNDLED} (bundled, pretrained; default) or torchvision:NAME")
    a("--weights", default=None, metavar="FILE", help="state dict for the model")
    a("--layer", default=None, help="target layer (default: the model's last spatial layer)")
    a("--target", default="predicted",
      help="'predicted' (default), a class index, or a file of 'PATH CLASS' lines")
    a("--out", required=True, metavar="STORE.zarr", help="Zarr store (local path or fsspec URL)")
    a("--batch-size", type=int, default=32, help="images per batch and per chunk (default: %(default)s)")
    a("--workers", type=int, default=None, help="decoding processes (default: CPUs per process - 1)")
    a("--size", type=int, default=224, help="input and map size (default: %(default)s)")
    a("--dtype", default="float16", choices=sorted(DTYPES), help="maps dtype (default: %(default)s)")
    a("--device", default=None, help="default: cuda when available (cuda:LOCAL_RANK under torchrun)")
    a("--precision", default=None, choices=PRECISION_CHOICES,
      help="how the model runs: fp32 (default), bf16 or fp16 (autocast; the maps' algebra stays "
           "float32); an error if the device cannot run it natively. Recorded in the store: a "
           "resume with another precision is refused; with --verify, checked against the store")
    a("--storage-option", action="append", type=key_value, default=[], metavar="KEY=VALUE",
      help="fsspec storage option for a remote --out, repeatable")
    a("--retry-failed", action="store_true", help="recompute chunks that hold failed images")
    a("--fingerprint", default="stat", choices=FINGERPRINTS,
      help="what a new store records of each image to see it change: stat (size and mtime; "
           "default) or sha256 (a hash of the file)")
    a("--verify", action="store_true",
      help="check --out instead of computing: every chunk marked done has its maps and, with "
           "--images, no image changed; exit 1 on a problem")
    a("--no-progress", action="store_true", help="no progress bar")


def run_cli(args: argparse.Namespace) -> int:
    """``fastcam generate``: 0 on success (failed images included), 1 when images are
    still pending, 2 on a usage error, 130 when interrupted. With ``--verify``:
    0 when the store checks out, 1 on a problem."""
    try:
        if args.verify:
            report = verify_store(args.out, args.images, dict(args.storage_option) or None,
                                  precision=args.precision)
            print(report.format())
            return 0 if report.ok else 1
        if args.images is None:
            raise UsageError("--images is required (except with --verify)")
        summary = generate(args.images, args.out, args.method, options=dict(args.option),
                           model=args.model, weights=args.weights, layer=args.layer, target=args.target,
                           batch_size=args.batch_size, workers=args.workers, size=args.size,
                           dtype=args.dtype, device=args.device, precision=args.precision or "fp32",
                           storage_options=dict(args.storage_option) or None,
                           retry_failed=args.retry_failed, fingerprint=args.fingerprint,
                           progress=not args.no_progress)
    except UsageError as e:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"fastcam generate: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nfastcam generate: interrupted; the finished chunks are in the store, run the same "
              "command again to resume", file=sys.stderr)
        return 130
    return 0 if summary.pending == 0 else 1
