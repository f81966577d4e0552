"""``fastcam generate`` on the command line: its options (torch-free, so that
``--help`` and usage errors answer at once) and :func:`run_cli`,
which calls :func:`fastcam.generation.generate` (or
:func:`~fastcam.generation.verify.verify_store` with ``--verify``)."""
from __future__ import annotations

import argparse
import os
import sys

from ..errors import UsageError
from .arguments import (BUNDLED, EXECUTORS, FINGERPRINTS, GENERATE_DTYPES, GENERATE_SAVES,
                        PRECISIONS, PREPROCESS_CHOICES)
from .options import OPTION_HELP, key_value, method_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``fastcam generate`` options."""
    a = parser.add_argument
    a("--images", default=None,
      help="folder of images (recursive), a text file of paths, an fsspec URL of either (s3://, gs://, "
           "memory://, file://), WebDataset tar shards ('shards/val-{0000..0009}.tar') or a Parquet table")
    a("--image-column", default="image", help="a Parquet table's image-bytes column (default: %(default)s)")
    a("--id-column", default=None, help="a Parquet table's image-id column (default: TABLE/ROW)")
    a("--label-column", default=None, help="a Parquet table's class column: the targets")
    a("--method", default="gradcam", help="explainer name (default: %(default)s)")
    a("-o", "--option", action="append", type=method_option, default=[], metavar="[METHOD.]KEY=VALUE",
      help=f"{OPTION_HELP}; e.g. -o max_iter=50")
    a("--model", default=BUNDLED, help=f"{BUNDLED} (bundled, pretrained; default) or torchvision:NAME")
    a("--weights", default=None, metavar="FILE", help="state dict for the model")
    a("--layer", default=None, help="target layer (default: the model's last spatial layer)")
    a("--normalize", default="auto", metavar="auto|imagenet|none|MEAN/STD",
      help="auto (default): the model's own mean/std (bundled model: 0.5/0.5), ImageNet's for "
           "torchvision models; none: the model gets [0,1] pixels; or MEAN/STD like "
           "0.5,0.5,0.5/0.5,0.5,0.5. Recorded in the store")
    a("--target", default=None,
      help="'predicted' (default), a class index, topk:K (K rows per image), or a file: eval's labels "
           "CSV (image,class) or 'PATH CLASS' lines, an image repeated for several classes; with "
           "--verify: check that the store's (image, target) rows are the ones it gives")
    a("--out", required=True, metavar="STORE.zarr", help="Zarr store (local path or fsspec URL)")
    a("--batch-size", type=int, default=32, help="images per batch and per chunk (default: %(default)s)")
    a("--workers", type=int, default=None, help="decoding processes (default: CPUs per process - 1)")
    a("--size", type=int, default=224, help="input and map size (default: %(default)s)")
    a("--dtype", default="float16", choices=GENERATE_DTYPES, help="maps dtype (default: %(default)s)")
    a("--device", default=None, help="default: cuda when available (cuda:LOCAL_RANK under torchrun)")
    a("--precision", default=None, choices=PRECISIONS,
      help="how the model runs: fp32 (default), bf16 or fp16 (autocast; the maps' algebra stays "
           "float32); an error if the device cannot run it natively. Recorded in the store: a "
           "resume with another precision is refused; with --verify, checked against the store")
    a("--storage-option", action="append", type=key_value, default=[], metavar="KEY=VALUE",
      help="fsspec storage option for a remote --out and remote --images, repeatable (per protocol: "
           "s3='{...}'); never recorded, masked in every message")
    a("--retry-failed", action="store_true", help="recompute chunks that hold failed images")
    a("--fingerprint", default="stat", choices=FINGERPRINTS,
      help="what a new store records of each image to see it change: stat (size and mtime; "
           "default) or sha256 (a hash of the file)")
    a("--verify", action="store_true",
      help="check --out instead of computing: every chunk marked done has its maps and, with "
           "--images, no image changed; exit 1 on a problem")
    a("--preprocess", default="crop", choices=PREPROCESS_CHOICES,
      help="crop: shorter side to size*256/224 and centre crop (default); resize: to size x size. "
           "Decoded in uint8; recorded in the store (a resume with another is refused)")
    a("--save", action="append", default=[], choices=GENERATE_SAVES,
      help="also keep low-res: the maps before upsampling (the store's low_res array)")
    a("--max-failed", default="0", metavar="N|P%",
      help="failed images allowed before the exit status is 1 (default: %(default)s)")
    a("--shard", default=None, type=shard_spec, metavar="i/N",
      help="an independent process of N (a SLURM array task): computes the pending chunks whose "
           "id = i mod N")
    a("--steal", action="store_true", help="with --shard: then compute any chunk still pending")
    a("--executor", default="local", choices=EXECUTORS,
      help="local (default; torchrun sets its own) or ray (fastcam[ray]: decoding tasks, one actor per worker)")
    a("--ray-workers", type=int, default=2, help="--executor ray: actors computing (default: %(default)s)")
    a("--no-progress", action="store_true", help="no progress bar")


def shard_spec(text: str) -> tuple[int, int]:
    """``i/N`` -> (i, N)."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected i/N, got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"expected i/N with 0 <= i < N, got {text!r}")
    return i, n


def run_cli(args: argparse.Namespace) -> int:
    """``fastcam generate``: 0 on success, 1 when images are still pending (with
    ``--shard`` and no ``--steal``: among its own chunks) or more
    failed than ``--max-failed`` allows (the summary says how many and why), 2 on
    a usage error, 130 when interrupted. With ``--verify``: 0 when the store
    checks out, 1 on a problem."""
    from ..generation.manifest import redact, remember_credentials, remember_secrets
    from ..generation.run import generate
    from ..generation.summary import parse_max_failed
    from ..generation.verify import verify_store

    try:
        if args.verify:
            report = verify_store(args.out, args.images, dict(args.storage_option) or None,
                                  precision=args.precision, target=args.target)
            print(report.format())
            return 0 if report.ok else 1
        if args.images is None:
            raise UsageError("--images is required (except with --verify)")
        parse_max_failed(args.max_failed, 0)          # its form, before any work
        remember_secrets(dict(args.storage_option))
        remember_credentials(args.out)
        remember_credentials(args.images)
        summary = generate(args.images, args.out, args.method, options=dict(args.option),
                           model=args.model, weights=args.weights, layer=args.layer,
                           target="predicted" if args.target is None else args.target,
                           batch_size=args.batch_size, workers=args.workers, size=args.size,
                           dtype=args.dtype, device=args.device, normalize=args.normalize,
                           precision=args.precision or "fp32",
                           storage_options=dict(args.storage_option) or None,
                           retry_failed=args.retry_failed, fingerprint=args.fingerprint,
                           preprocess=args.preprocess, save=tuple(args.save), shard=args.shard,
                           steal=args.steal, executor=args.executor, ray_workers=args.ray_workers,
                           image_column=args.image_column, id_column=args.id_column,
                           label_column=args.label_column, progress=not args.no_progress)
        allowed = parse_max_failed(args.max_failed, summary.n_images)
    except UsageError as e:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"fastcam generate: error: {redact(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nfastcam generate: interrupted; the finished chunks are in the store, run the same "
              "command again to resume", file=sys.stderr)
        return 130
    # a shard without --steal answers for its own chunks (a SLURM array task succeeds
    # when its share is done; the summary says what the store still lacks)
    if (summary.own_pending if args.shard is not None and not args.steal else summary.pending):
        return 1
    if summary.failed > allowed:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"fastcam generate: {summary.failed} image(s) failed, more than --max-failed "
                  f"{args.max_failed} allows ({allowed}): exit status 1", file=sys.stderr)
        return 1
    return 0
