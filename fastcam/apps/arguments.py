"""The options of ``fastcam explain``, ``eval``, ``photos`` and ``bench`` (and the
names ``fastcam generate``'s parser offers),
and the plain-text help they show. Torch-free, like :mod:`.options`: every
command's ``--help`` and its usage errors answer before torch is imported.

The names the parser offers (precisions, metrics, published tables, the bundled
model) are spelled here because the modules defining them import torch;
``tests/apps/test_cli_parser.py`` checks that each equals the library's."""
from __future__ import annotations

import argparse
import re

from .options import OPTION_HELP, method_option

#: ``fastcam.preflight.PRECISION_CHOICES``
PRECISIONS = ("fp32", "bf16", "fp16")
#: ``fastcam.models.loading.BUNDLED``
BUNDLED = "efficientnet_lite0"
#: the keys of ``fastcam.evaluation.runner.METRICS``
METRIC_NAMES = ("ad", "ai", "ag", "add", "insertion", "deletion", "pointing", "energy", "road_morf",
                "road_lerf", "sparseness", "complexity", "relevance_mass_accuracy",
                "relevance_rank_accuracy")
#: ``fastcam.evaluation.files.PREPROCESS_CHOICES``
PREPROCESS_CHOICES = ("crop", "resize")
#: ``fastcam.backend.BACKENDS``
BACKENDS = ("auto", "reference", "cpp", "triton", "cuda")
#: the keys of ``fastcam.evaluation.published.PUBLISHED``
PUBLISHED_NAMES = ("opticam-resnet50", "opticam-vgg16")
#: ``fastcam generate``: the keys of ``fastcam.generation.config.DTYPES``, its
#: ``SAVES``, ``fastcam.generation.fingerprint.FINGERPRINTS`` and
#: ``fastcam.generation.run.EXECUTORS``
GENERATE_DTYPES = ("float16", "float32")
GENERATE_SAVES = ("low-res",)
FINGERPRINTS = ("stat", "sha256")
EXECUTORS = ("local", "ray")

DEFAULT_EVAL_METHODS = "cam,gradcam,gradcam++,scorecam,liftcam,shapcam,opticam,advise"
DEFAULT_EVAL_METRICS = "ad,ai,ag,add,insertion,deletion"
DEVICE_HELP = "where the model runs: cpu, cuda or cuda:N (default: cuda when available, else cpu)"


def plain_text(doc: str) -> str:
    """A docstring as the help shows it: reST roles and literals as plain words
    (``:func:`~a.b.c``` -> ``c``, ````x```` -> ``x``), paragraphs kept."""
    text = re.sub(r":[a-z]+:`~?([^`<]*?)\s*<[^>]*>`", r"\1", doc)                # :role:`text <target>`
    text = re.sub(r":[a-z]+:`~([^`]*)`", lambda m: m.group(1).rsplit(".", 1)[-1], text)
    text = re.sub(r":[a-z]+:`([^`]*)`", r"\1", text)
    text = re.sub(r"``([^`]*)``", r"\1", text)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p for p in paragraphs if p)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, keeping the description's paragraphs (each re-wrapped)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(super(HelpFormatter, self)._fill_text(p, width, indent)
                           for p in text.split("\n\n"))


def add_option_argument(p: argparse.ArgumentParser, example: str) -> None:
    """The ``-o`` option, the same in every command."""
    p.add_argument("-o", "--option", action="append", type=method_option, default=[],
                   metavar="[METHOD.]KEY=VALUE", help=f"{OPTION_HELP}; e.g. -o {example}")


def add_model_arguments(p: argparse.ArgumentParser, *, size: int = 224) -> None:
    p.add_argument("--model", default=BUNDLED,
                   help=f"{BUNDLED} (bundled, ImageNet weights; default) or torchvision:ARCH")
    p.add_argument("--weights", default=None, metavar="FILE", help="state dict for the model")
    p.add_argument("--layer", default=None,
                   help="target layer (default: _head_act for the bundled model, else the last spatial layer)")
    p.add_argument("--normalize", default="imagenet", metavar="imagenet|none|MEAN/STD",
                   help="imagenet (default): [0,1] pixel images, masks applied before the model's own "
                        "mean/std (bundled model: 0.5/0.5; torchvision: ImageNet's); none: the model "
                        "gets [0,1] pixels; or explicit MEAN/STD like 0.485,0.456,0.406/0.229,0.224,0.225")
    p.add_argument("--size", type=int, default=size, help="input and map size (default: %(default)s)")
    p.add_argument("--device", default=None, help=DEVICE_HELP)


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, metavar="DIR|LIST",
                   help="folder of images (recursive) or a text file of image paths, one per line "
                        "(relative to the file's folder)")
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="lines IMAGE,CLASS (ground-truth class index); default: the predicted class")
    p.add_argument("--boxes", default=None, metavar="FILE",
                   help="lines IMAGE,X0,Y0,X1,Y1 in original pixels (for pointing, energy)")
    p.add_argument("--preprocess", default="crop", choices=PREPROCESS_CHOICES,
                   help="crop (default): shorter side to size·256/224, centre crop; resize: plain resize to "
                        "size×size, for images already resized (aspect ratio not kept); boxes follow either")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated (default: {DEFAULT_EVAL_METHODS}; with --maps: the stores' methods)")
    p.add_argument("--maps", action="append", default=[], metavar="[METHOD=]STORE",
                   help="evaluate the maps a fastcam generate run stored instead of computing them, "
                        "repeatable (one method per store); the store must be made with the same model, "
                        "layer, size, preprocessing and normalisation, and hold each image's map for its "
                        "target class (generate --target with this --labels file)")
    p.add_argument("--metrics", default=DEFAULT_EVAL_METRICS,
                   help=f"comma-separated from {','.join(METRIC_NAMES)},sanity (default: %(default)s); "
                        "sanity: the model-randomisation check (eval_sanity.csv, eval_sanity.png)")
    p.add_argument("--sanity-steps", type=int, default=8,
                   help="sanity: layer groups re-initialised from the top (default: %(default)s)")
    p.add_argument("--sanity-layers", default="cascade", metavar="cascade|independent",
                   help="sanity: cascading (default) or one group at a time")
    p.add_argument("--published", default=None, metavar="|".join(PUBLISHED_NAMES),
                   help="print the table next to a paper's published one")
    add_option_argument(p, "opticam.max_iter=50")
    p.add_argument("--out", default="fastcam-eval", metavar="DIR",
                   help="output folder for the eval_* files (default: %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="continue the evaluation in --out where it stopped: each method's results on each "
                        "batch of images are committed to OUT/eval_parts as they finish (always), and "
                        "--resume reads them back instead of recomputing; other settings are refused")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch (default: %(default)s)")
    p.add_argument("--metric-batch-size", type=int, default=64,
                   help="masked copies per forward in the metrics (default: %(default)s)")
    p.add_argument("--steps", type=int, default=224,
                   help="insertion/deletion steps (RISE: 224 at 224x224; default: %(default)s)")
    add_model_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="how the model runs for the methods and the metrics: fp32 (default), bf16 "
                        "or fp16 (autocast); an error if the device cannot run it natively")


def add_explain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    p.add_argument("--method", default="gradcam", help="explainer name (default: %(default)s)")
    add_option_argument(p, "gradcam.precision=bf16")
    p.add_argument("--target", default="predicted", help="'predicted' (default) or a class index")
    p.add_argument("--out", default="fastcam-explain", metavar="DIR",
                   help="output folder: per image NAME_METHOD.png, the overlay on the whole image "
                        "titled with the class and its probability, and NAME_METHOD.npy, the map on "
                        "the model's input (default: %(default)s)")
    add_model_arguments(p)
    p.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="how the model runs: fp32 (default), bf16 or fp16 (autocast; the maps' "
                        "algebra stays float32); an error if the device cannot run it natively")


def add_photos_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="fastcam-photos", metavar="DIR",
                   help="folder to write NAME.png into (default: %(default)s)")


#: ``fastcam bench``'s methods by default: the four fastcam was started for and their baselines
DEFAULT_BENCH_METHODS = "cam,gradcam,gradcam++,scorecam,liftcam,shapcam,opticam,advise"


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=BUNDLED,
                   help=f"{BUNDLED} (bundled, ImageNet weights; default) or torchvision:ARCH "
                        "(random init unless --weights)")
    p.add_argument("--weights", default=None, metavar="FILE", help="state dict for the model")
    p.add_argument("--layer", default=None,
                   help="target layer (default: _head_act for the bundled model, else the last spatial layer)")
    p.add_argument("--methods", default=DEFAULT_BENCH_METHODS, help="comma-separated (default: %(default)s)")
    add_option_argument(p, "opticam.max_iter=10")
    p.add_argument("--batch-size", type=int, default=8, help="images per call (default: %(default)s)")
    p.add_argument("--size", type=int, default=224, help="input size (default: %(default)s)")
    p.add_argument("--precision", default="fp32",
                   help=f"comma-separated from {','.join(PRECISIONS)}: a row per method and precision "
                        "(default: %(default)s)")
    p.add_argument("--device", default=None, help=DEVICE_HELP)
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="the kernels of fastcam's ops (fastcam.set_backend): auto (default: C++ on a "
                        "CPU, Triton on a GPU), reference, cpp, triton or cuda")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed calls per row, after the warm-up (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls first (default: %(default)s)")
    p.add_argument("--peers", action="store_true",
                   help="also time pytorch-grad-cam, TorchCAM and Captum (those installed: pip install "
                        "'fastcam[peers]') on the methods they have, in fp32, and report fastcam's speed-up")
    p.add_argument("--out", default="fastcam-bench", metavar="DIR",
                   help="output folder for bench.json and bench.png (default: %(default)s)")
