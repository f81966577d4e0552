"""The committed `fastcam eval` run (benchmarks/results/eval_*) against the
papers' claims, and the README's report of it.

For each ordering the papers claim, the README's results section states
"holds" or "does not hold"; this test recomputes the ordering from the
committed table and fails when the two disagree, so neither can change
without the other. It also checks that the README shows the committed table."""
import re
from pathlib import Path

import pytest

from fastcam.evaluate.tables import read_table_csv

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@pytest.fixture(scope="module")
def table():
    return read_table_csv(RESULTS / "eval_table.csv")


@pytest.fixture(scope="module")
def readme_section():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = text.index("<!-- eval:start -->"), text.index("<!-- eval:end -->")
    return text[start:end]


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
    }


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
                                   "LIFT-CAM's AD is no worse than Grad-CAM's"])
def test_readme_states_each_ordering_as_the_table_has_it(table, readme_section, claim):
    found = re.search(re.escape(f"**{claim}**") + r"[^\n]*?: \*\*(holds|does not hold)\*\*",
                      readme_section)
    assert found, f"the README's results section does not state whether '{claim}' holds"
    holds = _orderings(table)[claim]
    assert found.group(1) == ("holds" if holds else "does not hold"), (
        f"README says '{claim}' {found.group(1)}, the committed table says "
        f"{'it holds' if holds else 'it does not'}")


def test_readme_shows_the_committed_table(readme_section):
    rows = [ln for ln in (RESULTS / "eval_table.md").read_text(encoding="utf-8").splitlines()
            if ln.startswith("| ")]
    assert len(rows) >= 8
    for row in rows:
        assert row in readme_section, f"README results table differs from eval_table.md: {row}"
