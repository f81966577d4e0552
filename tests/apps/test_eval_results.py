"""The committed `fastcam eval` run (benchmarks/results/eval_*) against the
papers' claims, and the docs' report of it (docs/evaluating-methods.md).

For each ordering the papers claim, that page's results section states
"holds" or "does not hold"; this test recomputes the ordering from the
committed table and fails when the two disagree, so neither can change
without the other. Each claim's line also quotes the paired per-image difference and its 95%
Student-t interval (from eval_per_image.csv), checked here to one decimal. It
also checks that the page shows the committed table and the published
Opti-CAM numbers of fastcam/evaluation/published.py."""
import csv
import re
from pathlib import Path

import pytest

import numpy as np

from fastcam.evaluation.published import PUBLISHED
from fastcam.evaluation.tables import read_table_csv, t_interval

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


@pytest.fixture(scope="module")
def table():
    return read_table_csv(RESULTS / "eval_table.csv")


@pytest.fixture(scope="module")
def readme_section():
    text = (ROOT / "docs" / "evaluating-methods.md").read_text(encoding="utf-8")
    start, end = text.index("<!-- eval:start -->"), text.index("<!-- eval:end -->")
    return text[start:end]


@pytest.fixture(scope="module")
def per_image():
    with open(RESULTS / "eval_per_image.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {(r["method"], r["image"]): r for r in rows}


def paired(per_image, a, b, metric):
    """(mean, low, high) of a − b per image, the 95% Student-t interval."""
    images = sorted({img for _, img in per_image})
    d = np.array([float(per_image[(a, i)][metric]) - float(per_image[(b, i)][metric]) for i in images])
    n, mean, half = t_interval(d)
    assert n == 8
    return mean, mean - half, mean + half


#: claim -> (metric, method, rivals, sense): the method's mean is no worse ("le" for
#: lower-is-better, "ge" for higher) or strictly below ("lt") every rival's
PAIRED_CLAIMS = {
    "Shap-CAM's AD is no worse than Grad-CAM's and Score-CAM's": ("ad", "shapcam", ["gradcam", "scorecam"], "le"),
    "Shap-CAM's insertion is no worse than Grad-CAM's and Score-CAM's":
        ("insertion", "shapcam", ["gradcam", "scorecam"], "ge"),
    "ADVISE's AD is no worse than Grad-CAM's": ("ad", "advise", ["gradcam"], "le"),
    "Score-CAM's AD is below Grad-CAM's": ("ad", "scorecam", ["gradcam"], "lt"),
}


def _methods(table):
    return sorted({m for m, k in table if k != "seconds_per_image"})


def _orderings(table):
    mean = {key: row["mean"] for key, row in table.items()}
    others = [m for m in _methods(table) if m != "opticam"]
    return {
        "Opti-CAM's AD is below every other method's":
            all(mean[("opticam", "ad")] < mean[(m, "ad")] for m in others),
        "Opti-CAM's AG is above every other method's":
            all(mean[("opticam", "ag")] > mean[(m, "ag")] for m in others),
        "LIFT-CAM's AD is no worse than Grad-CAM's":
            mean[("liftcam", "ad")] <= mean[("gradcam", "ad")],
    } | {claim: all({"le": mean[(m, k)] <= mean[(r, k)], "ge": mean[(m, k)] >= mean[(r, k)],
                     "lt": mean[(m, k)] < mean[(r, k)]}[sense] for r in rivals)
         for claim, (k, m, rivals, sense) in PAIRED_CLAIMS.items()}


def test_committed_run_is_complete(table):
    methods = _methods(table)
    assert {"cam", "gradcam", "gradcam++", "liftcam", "shapcam", "opticam", "advise"} <= set(methods)
    for m in methods:
        for k in ("ad", "ai", "ag", "add", "insertion", "deletion", "pointing", "energy"):
            assert table[(m, k)]["n"] == 8, (m, k)
        assert table[(m, "seconds_per_image")]["mean"] > 0
    command = (RESULTS / "eval_command.txt").read_text()
    assert command.startswith("fastcam eval ") and "--normalize imagenet" in command
    assert "--labels tests/data/photos_labels.csv" in command
    for path in ("eval_table.md", "eval_per_image.csv", "eval_timings.json"):
        assert (RESULTS / path).is_file()


@pytest.mark.parametrize("claim", ["Opti-CAM's AD is below every other method's",
                                   "Opti-CAM's AG is above every other method's",
                                   "LIFT-CAM's AD is no worse than Grad-CAM's", *PAIRED_CLAIMS])
def test_readme_states_each_ordering_as_the_table_has_it(table, readme_section, claim):
    found = re.search(re.escape(f"**{claim}**") + r"[^\n]*?: \*\*(holds|does not hold)\*\*",
                      readme_section)
    assert found, f"docs/evaluating-methods.md does not state whether '{claim}' holds"
    holds = _orderings(table)[claim]
    assert found.group(1) == ("holds" if holds else "does not hold"), (
        f"docs/evaluating-methods.md says '{claim}' {found.group(1)}, the committed table says "
        f"{'it holds' if holds else 'it does not'}")


def test_readme_shows_the_committed_table(readme_section):
    rows = [ln for ln in (RESULTS / "eval_table.md").read_text(encoding="utf-8").splitlines()
            if ln.startswith("| ")]
    assert len(rows) >= 8
    for row in rows:
        assert row in readme_section, f"docs/evaluating-methods.md results table differs from eval_table.md: {row}"


def _claim_line(readme_section, claim):
    line = next((ln for ln in readme_section.splitlines() if f"**{claim}**" in ln), None)
    assert line, f"docs/evaluating-methods.md does not state '{claim}'"
    return line


def _num(text):
    return float(text.replace("−", "-"))


@pytest.mark.parametrize("claim", list(PAIRED_CLAIMS))
def test_readme_quotes_each_claims_numbers_and_paired_interval(table, per_image, readme_section, claim):
    metric, method, rivals, _ = PAIRED_CLAIMS[claim]
    line = _claim_line(readme_section, claim)
    for m in (method, *rivals):
        assert f"{m} {table[(m, metric)]['mean']:.1f}" in line, (claim, m, line)
    for r in rivals:
        found = re.search(rf"{re.escape(method)} − {re.escape(r)} ([−\-+]?[\d.]+) \[([−\-]?[\d.]+), ([−\-]?[\d.]+)\]",
                          line)
        assert found, f"'{claim}': no paired difference against {r} in: {line}"
        want = paired(per_image, method, r, metric)
        for got, expected in zip(found.groups(), want):
            assert abs(_num(got) - expected) <= 0.051, (claim, r, found.groups(), want)


def test_readme_shows_the_published_opticam_numbers(readme_section):
    names = {"Fake-CAM": "fakecam", "Grad-CAM": "gradcam", "Grad-CAM++": "gradcam++", "Score-CAM": "scorecam",
             "Ablation-CAM": "ablationcam", "Opti-CAM": "opticam"}
    cells = [[c.strip() for c in ln.split("|")[1:-1]] for ln in readme_section.splitlines() if ln.startswith("| ")]
    rows = {c[0]: c[1:] for c in cells if c[0] in names}
    cols = ["ad", "ag", "ai", "seconds", "insertion", "deletion"]
    assert set(rows) == set(names)
    for title, key in names.items():
        for half, arch in enumerate(("opticam-resnet50", "opticam-vgg16")):
            cells = rows[title][6 * half:6 * half + 6]
            want = PUBLISHED[arch][1][key]
            assert {c: float(v) for c, v in zip(cols, cells) if v} == want, (title, arch)
