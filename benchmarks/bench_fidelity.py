"""bf16 against fp32 on the real model, the checks too slow for the test suite
(moved from tests/methods/test_precision_fidelity.py, assertions unchanged): the bundled
EfficientNet-Lite0, the 8 bundled photos at 224×224, their ground-truth classes
(tests/data/photos_labels.csv).

- Score-CAM: every photo's bf16 map correlates with its fp32 map at >= 0.99
  (Pearson); 2 × 8 × 1280 masked forwards at 224×224, about 2 minutes on a quiet
  2-core CPU (at 96×96, where the layer is 3×3, the worst photo correlates at 0.97
  only, so the size cannot shrink).
- Opti-CAM, Shap-CAM and ADVISE (whose maps come from an optimisation, sampled
  permutations or a selection): the mean AD and AG of the bf16 maps lie inside
  the fp32 maps' 95% Student-t interval (not for Opti-CAM: a strict expected
  failure, see OPTICAM_BF16), and each of the papers' orderings that holds in
  fp32 still holds in bf16. The interval needs all 8 photos at full size.

The cheap rows (Grad-CAM, Grad-CAM++, CAM, LIFT-CAM) stay in
tests/methods/test_precision_fidelity.py. The metrics score both precisions' maps with
the fp32 model. Run: ``python -m pytest benchmarks/bench_fidelity.py``
(skipped under FASTCAM_BENCH_SMOKE=1: its thresholds hold at full size only)."""
import csv
from pathlib import Path

import numpy as np
import pytest
import torch

import fastcam
from fastcam.data import load_photos
from fastcam.engine import cpu_supports
from fastcam.evaluation.tables import t_interval
from fastcam.metrics import average_drop, average_gain
from fastcam.metrics.avx import pearson

from conftest import SMOKE

pytestmark = [pytest.mark.skipif(not cpu_supports(torch.bfloat16),
                                 reason="this CPU has no native bf16 (oneDNN)"),
              pytest.mark.skipif(SMOKE, reason="the fidelity thresholds hold at full size only")]
LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "photos_labels.csv"
LAYER = "_head_act"


@pytest.fixture(scope="module")
def model():
    return fastcam.models.efficientnet_lite0(pretrained=True).eval()


@pytest.fixture(scope="module")
def photos():
    x, names = load_photos(size=224)
    rows = [r for r in LABELS.read_text().splitlines() if r and not r.startswith("#")]
    labels = {r["image"]: int(r["class"]) for r in csv.DictReader(rows)}
    return x, [labels[n] for n in names]


def _both(model, x, targets, method):
    return [fastcam.explain(model, x, method, LAYER, targets, normalize=model.normalization,
                            precision=p) for p in ("fp32", "bf16")]


def test_scorecam_bf16_maps_correlate_with_fp32_on_every_photo(model, photos):
    x, targets = photos
    fp32, bf16 = _both(model, x, targets, "scorecam")
    assert bf16.dtype == torch.float32 and not torch.equal(fp32, bf16)   # bf16 really ran
    r = pearson(fp32, bf16)
    assert bool((r >= 0.99).all()), r


@pytest.fixture(scope="module")
def scores(model, photos):
    """AD and AG (×100, per photo) of each method's fp32 and bf16 maps."""
    x, targets = photos
    out = {}
    for method in ("gradcam", "gradcam++", "cam", "liftcam", "opticam", "shapcam", "advise"):
        for precision, maps in zip(("fp32", "bf16"), _both(model, x, targets, method)):
            for name, fn in (("ad", average_drop), ("ag", average_gain)):
                v = fn(model, x, maps, targets, normalize=model.normalization)
                out[method, precision, name] = v.double().numpy() * 100
    return out


# Opti-CAM in bf16 does not keep its fp32 quality: its 100 Adam steps follow bf16
# gradients, and on these photos the mean AG fell from 53.0 ± 25.9 (fp32) to 13.5, the
# mean AD rose from 0.0 ± 0.0 to 4.2 (benchmarks/results/precision_fidelity.json). Kept as
# strict expected failures: the day they pass, this marker must go.
OPTICAM_BF16 = pytest.mark.xfail(strict=True, reason="bf16 Opti-CAM's AD/AG leave the fp32 interval")


@pytest.mark.parametrize("method", [pytest.param("opticam", marks=OPTICAM_BF16), "shapcam", "advise"])
@pytest.mark.parametrize("metric", ["ad", "ag"])
def test_bf16_ad_and_ag_lie_inside_the_fp32_interval(scores, method, metric):
    n, mean, half = t_interval(scores[method, "fp32", metric])
    assert n == 8 and np.isfinite(half)
    assert abs(float(np.mean(scores[method, "bf16", metric])) - mean) <= half


def _orderings(scores, precision):
    mean = {(m, k): float(np.mean(v)) for (m, p, k), v in scores.items() if p == precision}
    others = ["gradcam", "gradcam++", "cam", "liftcam", "shapcam", "advise"]
    return {
        "Opti-CAM AD below every other": all(mean["opticam", "ad"] < mean[m, "ad"] for m in others),
        "Opti-CAM AG above every other": all(mean["opticam", "ag"] > mean[m, "ag"] for m in others),
        "LIFT-CAM AD <= Grad-CAM AD": mean["liftcam", "ad"] <= mean["gradcam", "ad"],
        "Shap-CAM AD <= Grad-CAM AD": mean["shapcam", "ad"] <= mean["gradcam", "ad"],
        "ADVISE AD <= Grad-CAM AD": mean["advise", "ad"] <= mean["gradcam", "ad"],
    }


def test_the_papers_orderings_that_hold_in_fp32_hold_in_bf16(scores):
    fp32, bf16 = _orderings(scores, "fp32"), _orderings(scores, "bf16")
    held = [k for k, v in fp32.items() if v]
    assert held, "no ordering holds in fp32: nothing to compare"
    assert {k: bf16[k] for k in held} == {k: True for k in held}
