"""Render the documentation's gallery: every method on the bundled photos.

    python docs/gallery.py [--out docs/images] [--photos chelsea,coffee,rocket] [--size 160]

writes ``gallery.png`` (the eight methods of fastcam's seed papers, shown in the
README) and one ``gallery_<family>.png`` per method family (shown on that family's
page), each a grid with one row per photo and one column per method, made by
:func:`fastcam.visualize.save_grid`. The model is the bundled pretrained
EfficientNet-Lite0 at its ``_head_act`` layer; each photo's predicted class is
explained. The budgets of the many-pass methods are smaller than their defaults
so that the whole gallery renders in minutes on a laptop CPU; the column titles
say so. LeGrad explains vision transformers only and has no picture here.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

#: family -> methods, in the order of the family's page (docs/methods/<family>.md)
FAMILIES: dict[str, list[str]] = {
    "gradient": ["cam", "gradcam", "gradcam++", "xgradcam", "hirescam", "gradcam-elementwise",
                 "layercam", "shapleycam", "smoothgradcampp", "fullgrad", "finercam", "refinecam"],
    "perturbation": ["scorecam", "sscam", "iscam", "ablationcam"],
    "shapley": ["liftcam", "shapcam"],
    "optimisation": ["opticam"],
    "advise": ["advise"],
    "projection": ["eigencam", "eigengradcam", "kpcacam", "segeigencam", "fem"],
    "sanity": ["fakecam", "randomcam"],
}
#: the README's gallery: the seed papers' methods and their baselines
HEADLINE = ["cam", "gradcam", "gradcam++", "scorecam", "liftcam", "opticam", "shapcam", "advise"]
#: methods the gallery cannot render on a CNN (they explain vision transformers)
NOT_RENDERED = {"legrad": "explains vision transformers' attention; the bundled model is a CNN"}
#: smaller budgets than the defaults, so that the gallery renders in minutes
BUDGETS: dict[str, dict] = {
    "opticam": {"max_iter": 50},
    "sscam": {"num_samples": 2, "seed": 0},
    "iscam": {"num_samples": 2},
    "smoothgradcampp": {"seed": 0},
    "randomcam": {"seed": 0},
}
#: the bundled model's layers given to methods that need more than one
#: the bundled model's layers where a method does not explain ``_head_act``: Refine-CAM needs
#: several; SS-CAM and IS-CAM run K·num_samples forwards per image, so they explain the last
#: block's 320 channels instead of the head's 1280 (the column titles say so)
LAYERS: dict[str, list[str]] = {"refinecam": ["_blocks.12", "_head_act"], "sscam": ["_blocks.15"],
                                "iscam": ["_blocks.15"]}


def _shrink(path: Path, colors: int = 192) -> None:
    """Re-save a PNG with an adaptive palette: about a third of the bytes, so that the
    committed images stay small (each under 300 KB)."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def render(out: Path, photos: list[str], size: int, cache: Path | None = None) -> dict[str, float]:
    """Compute every method's maps once (or read them from ``cache``, a folder of
    ``<method>.pt`` files written by an earlier run with the same photos and size) and
    write the grids; returns seconds per method (0 for a cached one)."""
    import fastcam
    from fastcam.data import load_photos
    from fastcam.data.imagenet import IMAGENET_CLASSES
    from fastcam.visualize import save_grid

    torch.manual_seed(0)
    model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
    x, names = load_photos(photos, size=size)
    norm = model.normalization
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in norm)
    with torch.no_grad():
        prob = torch.softmax(model((x - mean) / std), dim=1)
    top = prob.argmax(1)
    rows = [f"{n}\n{IMAGENET_CLASSES[int(c)].split(',')[0]} {float(prob[i, c]):.2f}"
            for i, (n, c) in enumerate(zip(names, top))]

    maps, seconds = {}, {}
    for name in dict.fromkeys(m for ms in FAMILIES.values() for m in ms):
        cached = cache / f"{name}.pt" if cache is not None else None
        if cached is not None and cached.is_file():
            maps[name], seconds[name] = torch.load(cached), 0.0
            continue
        cls = fastcam.methods.METHODS[name]
        t0 = time.perf_counter()
        with cls(model, LAYERS.get(name, ["_head_act"]), normalize=norm, **BUDGETS.get(name, {})) as cam:
            maps[name] = cam(x, targets=top)
        seconds[name] = time.perf_counter() - t0
        if cached is not None:
            cache.mkdir(parents=True, exist_ok=True)
            torch.save(maps[name], cached)
        print(f"{name}: {seconds[name]:.1f} s", flush=True)

    def title(m: str) -> str:
        words = {"max_iter": "iterations", "num_samples": "samples"}
        notes = [f"{v} {words[k]}" for k, v in BUDGETS.get(m, {}).items() if k in words]
        if m in ("sscam", "iscam"):
            notes.append("block 15")
        return f"{m}\n{', '.join(notes)}" if notes else m

    out.mkdir(parents=True, exist_ok=True)
    grids = {"gallery": HEADLINE, **{f"gallery_{f}": ms for f, ms in FAMILIES.items()}}
    for stem, methods in grids.items():
        path = out / f"{stem}.png"
        save_grid(path, x, {m: maps[m] for m in methods}, row_labels=rows,
                  col_labels=[title(m) for m in methods], dpi=60, cell_inches=1.6)
        _shrink(path)
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "images")
    parser.add_argument("--photos", default="chelsea,coffee,rocket")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder of computed maps, reused by a later run (same photos and size)")
    args = parser.parse_args(argv)
    render(args.out, args.photos.split(","), args.size, args.cache)


if __name__ == "__main__":
    main()
