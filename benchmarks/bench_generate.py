"""`fastcam generate` end to end on CPU (one run each): EfficientNet-Lite0 on
folders of JPEG files made from the bundled real photos (random crops, resized
to 320-512 px), vs the bare loop of the same method over the same images
already decoded into memory (no decoding, no store). The generate row includes
everything the command does: listing, model load, store creation, DataLoader
workers decoding and resizing, compression and writing. Target: at least 0.8
of the bare loop's images/s (time ratio at most 1.25).

Both sides build their explainer inside the timed region (a method's one-time
setup, such as LIFT-CAM splitting the model at the layer, counts for both) in
a process already warmed at these shapes; generate also loads the model.
Grad-CAM and LIFT-CAM (when ``"liftcam"`` is in ``fastcam.METHODS``; skipped
otherwise) on 512 images (batch 32); Opti-CAM (up to 100 Adam iterations per
image) on 8. Each method's two rows run back to back."""
import time

import numpy as np
import pytest
import torch
from PIL import Image

import fastcam
from fastcam.data import load_image, load_photos

from conftest import SMOKE

SIZE = 64 if SMOKE else 224
#: method: (images, batch size, options)
CASES = {
    "gradcam": (8, 4, {}) if SMOKE else (512, 32, {}),
    "liftcam": (8, 4, {}) if SMOKE else (512, 32, {}),
    "opticam": (4, 4, {"max_iter": 2}) if SMOKE else (8, 8, {}),
}
WORKERS = 1
_RATES: dict = {}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The largest case's image files (each case takes the first N, sorted)."""
    root = tmp_path_factory.mktemp("bench_generate") / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    x, _ = load_photos(size=512)
    photos = (x.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    n = max(n for n, _, _ in CASES.values())
    for i in range(n):
        h, w = rng.integers(300, 513, size=2)
        top, left = rng.integers(0, 512 - h + 1), rng.integers(0, 512 - w + 1)
        im = Image.fromarray(photos[i % len(photos)][top:top + h, left:left + w])
        scale = rng.uniform(320, 512) / max(h, w)
        im = im.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
        im.save(root / f"{i:05d}.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def model():
    return fastcam.models.efficientnet_lite0(pretrained=True).eval()


def _paths(folder, method):
    n = CASES[method][0]
    return sorted(folder.glob("*.jpg"))[:n]


def _needs(method):
    if method not in fastcam.METHODS:
        pytest.skip(f"{method!r} is not in fastcam.METHODS in this version")


def _group(method):
    n, batch, _ = CASES[method]
    return f"generate {method} efficientnet_lite0 {SIZE}px N{n} B{batch}"


def _bare_loop(benchmark, folder, model, method):
    """The same method over the images already in memory, batch by batch."""
    n, batch, options = CASES[method]
    x = torch.stack([load_image(p, SIZE) for p in _paths(folder, method)])
    cls = fastcam.METHODS[method]
    # warm the process (oneDNN primitives for these shapes) with a throwaway explainer ...
    cls(model, ["_head_act"], normalize=model.normalization, **options)(x[:batch])
    timing = {}

    def bare():
        t0 = time.perf_counter()
        # ... and time a new one: a method's one-time setup (LIFT-CAM splits the model
        # at the layer) is paid by the bare loop as by generate
        cam = cls(model, ["_head_act"], normalize=model.normalization, **options)
        for i in range(0, n, batch):
            cam(x[i:i + batch])
        timing["s"] = time.perf_counter() - t0

    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(bare, rounds=1, iterations=1)
    _RATES[method] = n / timing["s"]
    benchmark.extra_info["note"] = f"{_RATES[method]:7.2f} images/s"


def _generate(benchmark, folder, method, tmp_path):
    """The whole command on the image files, into a new store."""
    n, batch, options = CASES[method]
    listing = tmp_path / "images.txt"
    listing.write_text("\n".join(str(p) for p in _paths(folder, method)))
    timing = {}
    runs = iter(range(1_000_000))

    def setup():
        return (tmp_path / f"store{next(runs)}.zarr",), {}

    def run(out):
        t0 = time.perf_counter()
        summary = fastcam.generate(listing, out, method, options=options, size=SIZE, batch_size=batch,
                                   workers=WORKERS, progress=False, verbose=False)
        timing["s"] = time.perf_counter() - t0
        assert summary.done == n and summary.failed == 0

    benchmark.pedantic(run, setup=setup, rounds=1, iterations=1)
    rate = n / timing["s"]
    ratio = f" = {rate / _RATES[method]:.2f} of the bare loop" if method in _RATES else ""
    benchmark.extra_info["note"] = f"{rate:7.2f} images/s{ratio} (workers={WORKERS})"


# bare loop and generate of a method run back to back (the machine's load then is alike)
@pytest.mark.parametrize("method,kind", [(m, k) for m in CASES for k in ("bare_loop", "fastcam_generate")])
def test_generate_vs_bare_loop(benchmark, folder, model, method, kind, tmp_path):
    _needs(method)
    benchmark.group = _group(method)
    if kind == "bare_loop":
        _bare_loop(benchmark, folder, model, method)
    else:
        _generate(benchmark, folder, method, tmp_path)
