"""bf16 against fp32 on the real model: the bundled EfficientNet-Lite0, the 8
bundled photos, their ground-truth classes (tests/data/photos_labels.csv).

Grad-CAM, Grad-CAM++, CAM and LIFT-CAM: every photo's bf16 map correlates with
its fp32 map at >= 0.99 (Pearson), at 224×224 (one forward and backward per
precision). The slow real-model checks, with the same assertions, are in
benchmarks/bench_fidelity.py: Score-CAM's maps (2 × 8 × 1280 masked forwards at
224×224, which cannot shrink: at 96×96 its worst photo correlates at 0.97 only)
and Opti-CAM's, Shap-CAM's and ADVISE's AD/AG intervals and the papers' orderings
(which need all 8 photos at full size)."""
import csv
from pathlib import Path

import pytest
import torch

import fastcam
from fastcam.data import load_photos
from fastcam.engine import cpu_supports
from fastcam.metrics.avx import pearson

pytestmark = pytest.mark.skipif(not cpu_supports(torch.bfloat16),
                                reason="this CPU has no native bf16 (oneDNN)")
LABELS = Path(__file__).parent.parent / "data" / "photos_labels.csv"
LAYER = "_head_act"


@pytest.fixture(scope="module")
def model():
    return fastcam.models.efficientnet_lite0(pretrained=True).eval()


def _photos(size):
    x, names = load_photos(size=size)
    rows = [r for r in LABELS.read_text().splitlines() if r and not r.startswith("#")]
    labels = {r["image"]: int(r["class"]) for r in csv.DictReader(rows)}
    return x, [labels[n] for n in names]


def _both(model, x, targets, method):
    return [fastcam.explain(model, x, method, LAYER, targets, normalize=model.normalization,
                            precision=p) for p in ("fp32", "bf16")]


@pytest.mark.parametrize("method,size", [("gradcam", 224), ("gradcam++", 224), ("cam", 224),
                                         ("liftcam", 224)])
def test_bf16_maps_correlate_with_fp32_on_every_photo(model, method, size):
    x, targets = _photos(size)
    fp32, bf16 = _both(model, x, targets, method)
    assert bf16.dtype == torch.float32 and not torch.equal(fp32, bf16)   # bf16 really ran
    r = pearson(fp32, bf16)
    assert bool((r >= 0.99).all()), r
