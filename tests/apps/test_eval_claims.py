"""Paired intervals and claim verdicts (fastcam.evaluation.claims) against
hand-computed cases."""
import math

import numpy as np
import pytest

from fastcam.evaluation import claims as C
from fastcam.evaluation.runner import EvalResult

T_975_3 = 3.182446305284263          # Student-t 0.975 quantile, 3 degrees of freedom (tables)


def test_paired_interval_hand_computed():
    iv = C.paired_interval(np.array([11.0, 12.0, 13.0, 14.0]), np.array([10.0, 10.0, 10.0, 10.0]))
    # d = 1, 2, 3, 4: mean 2.5, s = sqrt(5/3), half = t · s / 2
    half = T_975_3 * math.sqrt(5 / 3) / 2
    assert iv.n == 4 and iv.mean == pytest.approx(2.5)
    assert (iv.low, iv.high) == (pytest.approx(2.5 - half), pytest.approx(2.5 + half))
    assert iv.low == pytest.approx(0.44574, abs=1e-5)


def test_pairing_removes_the_spread_between_images():
    a = np.array([10.0, 50.0, 90.0, 30.0])
    b = a - np.array([1.0, 2.0, 3.0, 4.0])           # the same differences as above, on spread-out images
    assert C.paired_interval(a, b).low == pytest.approx(0.44574, abs=1e-5)
    assert C.verdict(C.paired_interval(a, b), higher_is_better=True) == C.HOLDS


def test_only_images_where_both_have_a_value_are_paired():
    a = np.array([1.0, np.nan, 3.0, 5.0, 2.0])
    b = np.array([0.0, 0.0, np.nan, 4.0, 0.0])
    iv = C.paired_interval(a, b)                     # pairs (1, 0), (5, 4), (2, 0): d = 1, 1, 2
    assert iv.n == 3 and iv.mean == pytest.approx(4 / 3)
    one = C.paired_interval(np.array([1.0, np.nan]), np.array([0.0, 0.0]))
    assert one.n == 1 and math.isnan(one.low) and C.verdict(one, True) == C.UNDECIDED
    with pytest.raises(ValueError, match="one length"):
        C.paired_interval(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("low, high, higher, want", [
    (0.4, 4.6, True, C.HOLDS), (0.4, 4.6, False, C.DOES_NOT_HOLD),
    (-4.6, -0.4, True, C.DOES_NOT_HOLD), (-4.6, -0.4, False, C.HOLDS),
    (-1.0, 2.0, True, C.UNDECIDED), (-1.0, 2.0, False, C.UNDECIDED),
    (0.0, 2.0, True, C.UNDECIDED),                   # 0 inside the closed interval
])
def test_verdict_from_the_interval(low, high, higher, want):
    assert C.verdict(C.PairedInterval(10, (low + high) / 2, low, high), higher) == want


def test_judge_uses_each_metrics_sense_and_reports_every_rival():
    values = {("opticam", "ad"): np.array([1.0, 2.0, 3.0, 4.0]),       # AD: lower is better
              ("gradcam", "ad"): np.array([3.0, 5.0, 7.0, 9.0]),        # d = −2, −3, −4, −5: holds
              ("scorecam", "ad"): np.array([1.0, 2.5, 2.0, 4.5]),       # d = 0, −0.5, 1, −0.5: undecided
              ("opticam", "ag"): np.array([1.0, 2.0, 3.0, 4.0]),        # AG: higher is better
              ("gradcam", "ag"): np.array([3.0, 5.0, 7.0, 9.0])}        # d < 0: does not hold
    result = EvalResult(["a", "b", "c", "d"], [0] * 4, [0] * 4, ["opticam", "gradcam", "scorecam"], ["ad", "ag"],
                        values, {}, {})
    claims = [C.Claim("opticam", ("gradcam", "scorecam"), "ad", "Opti-CAM Table 1", (("opticam", 1.5),)),
              C.Claim("opticam", ("gradcam",), "ag")]
    got = C.judge(result, claims)
    assert [(r.rival, r.claim.metric, r.verdict) for r in got] == [
        ("gradcam", "ad", C.HOLDS), ("scorecam", "ad", C.UNDECIDED), ("gradcam", "ag", C.DOES_NOT_HOLD)]
    assert got[0].interval.mean == pytest.approx(-3.5)
    text = C.claims_table(got)
    assert "| opticam better than gradcam on AD ↓ | −3.5 [" in text and "| 4 | holds |" in text
    assert "opticam 1.5 (Opti-CAM Table 1)" in text
    with pytest.raises(ValueError, match="has no"):
        C.judge(result, [C.Claim("advise", ("gradcam",), "ad")])


def test_applicable_cuts_claims_to_the_run():
    from fastcam.evaluation.published import PAPER_CLAIMS

    got = C.applicable(PAPER_CLAIMS, ["opticam", "gradcam", "shapcam"], ["ad"])
    assert [(c.method, c.rivals, c.metric) for c in got] == [("opticam", ("gradcam",), "ad"),
                                                            ("shapcam", ("gradcam",), "ad")]
    assert dict(got[0].published)["opticam"] == 1.5 and dict(got[0].published)["gradcam"] == 12.2
    assert C.applicable(PAPER_CLAIMS, ["gradcam", "scorecam"], ["ad", "ag"]) == []


def test_eval_writes_the_claims_it_can_judge(tmp_path, capsys):
    import torch
    from PIL import Image

    from fastcam.apps.cli import main

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / f"im{i}.png")
    torch.manual_seed(0)
    out = tmp_path / "out"
    assert main(["eval", "--images", str(tmp_path), "--out", str(out), "--model", "torchvision:mobilenet_v3_small",
                 "--size", "64", "--no-progress", "--methods", "gradcam,liftcam", "--metrics", "ad,ag"]) == 0
    text = (out / "eval_claims.md").read_text()
    assert "paired per-image differences" in capsys.readouterr().out
    row = next(ln for ln in text.splitlines() if ln.startswith("| liftcam better than gradcam on AD"))
    import csv
    with open(out / "eval_per_image.csv") as f:
        rows = list(csv.DictReader(f))
    ad = {m: np.array([float(r["ad"]) for r in rows if r["method"] == m]) for m in ("liftcam", "gradcam")}
    iv = C.paired_interval(ad["liftcam"], ad["gradcam"])   # the CSV's 6 digits: the row's one decimal
    assert f"| {iv.n} | {C.verdict(iv, higher_is_better=False)} |" in row
    assert f"{iv.mean:+.1f}".replace("-", "−") in row
    assert "LIFT-CAM" in row and not any("opticam" in ln for ln in text.splitlines()[2:])
