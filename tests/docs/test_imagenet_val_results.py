"""The published ImageNet-val subset tables are what the committed per-image
results give: `benchmarks/eval_imagenet_val.py tables` recomputes them (no maps,
no model, no shared data needed)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "imagenet_val"


def _script():
    spec = importlib.util.spec_from_file_location("eval_imagenet_val", ROOT / "benchmarks" / "eval_imagenet_val.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (RESULTS / "tables.md").exists(), reason="the ImageNet-val run is not committed")
def test_committed_tables_are_recomputed_from_the_committed_results():
    text = _script().tables(write=False)
    assert text == (RESULTS / "tables.md").read_text(encoding="utf-8")
    assert text == (ROOT / "docs" / "imagenet-val.md").read_text(encoding="utf-8")
    assert "ImageNet-val subset (n = 1,000)" in text


@pytest.mark.skipif(not (RESULTS / "tables.md").exists(), reason="the ImageNet-val run is not committed")
@pytest.mark.parametrize("model", ["efficientnet_lite0", "mobilenet_v2"])
def test_committed_low_res_maps_cover_the_per_image_results(model):
    script = _script()
    result, run = script.load_result(model)
    with np.load(RESULTS / f"{model}_low_res.npz") as z:
        for m in result.methods:
            if m == "fakecam":             # its map is one constant, not stored
                continue
            low, ids = z[f"{m}/low_res"], list(z[f"{m}/image"])
            assert len(low) == len(ids) == script.N_IMAGES[m] and np.isfinite(low).all()
            evaluated = [result.names[i] for i in np.flatnonzero(np.isfinite(result.values[(m, "ad")]))]
            assert set(evaluated) <= set(ids), m
