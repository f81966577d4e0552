"""benchmarks/gpu_check.py, the parts that run without a GPU: argument checks,
reading a JUnit file, the table and the exit status (the timing loop itself is
exercised by ``gpu_check.py time --dry-run``, on CPU)."""
import importlib.util
import os
import sys

import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "gpu_check.py")
_spec = importlib.util.spec_from_file_location("gpu_check", _PATH)
gc = importlib.util.module_from_spec(_spec)
sys.modules["gpu_check"] = gc  # dataclasses look their module up
_spec.loader.exec_module(gc)

_JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_a" name="test_ok" time="0.1"/>
<testcase classname="tests.test_a" name="test_skip" time="0"><skipped message="no GPU"/></testcase>
<testcase classname="tests.test_b" name="test_bad" time="0"><failure message="x"/></testcase>
<testcase classname="tests.test_b" name="test_err" time="0"><error message="y"/></testcase>
</testsuite></testsuites>"""


def test_arguments():
    a = gc.parse_args(["time", "--out", "d", "--methods", "gradcam, advise"])
    assert a.methods == ["gradcam", "advise"] and a.reps == 5 and not a.dry_run
    for bad in (["time", "--out", "d", "--methods", "gradcam,nope"],
                ["time", "--out", "d", "--reps", "0"], ["time"], []):
        with pytest.raises(SystemExit):
            gc.parse_args(bad)


def test_junit_and_exit_status(tmp_path):
    path = tmp_path / "r.xml"
    path.write_text(_JUNIT)
    res = gc.read_junit(str(path))
    assert res["tests"] == 4 and res["passed"] == 1
    assert res["failed"] == ["tests.test_b::test_bad", "tests.test_b::test_err"]
    assert res["skipped"] == ["tests.test_a::test_skip: no GPU"]
    assert gc.main(["tests", "--junit", str(path)]) == 1
    ok = dict(tests=3, passed=3, failed=[], skipped=[])
    good = [gc.Check("x", 1e-5, 1e-3, True)]
    assert gc.exit_status(good, ok, True) == 0
    assert gc.exit_status(good, ok, False) == 3                       # budget ran out
    assert gc.exit_status(good, dict(ok, skipped=["s"]), True) == 1   # any skip fails
    assert gc.exit_status(good + [gc.Check("y", 1.0, 1e-3, False)], ok, True) == 1


def test_table_and_json(tmp_path):
    rows = [gc.Row("gradcam", "fp32", "fastcam/triton", 32, 10.0),
            gc.Row("gradcam", "fp32", "fastcam/cuda", 32, 12.5),
            gc.Row("gradcam", "fp32", "pytorch-grad-cam", 32, 40.0),
            gc.Row("gradcam", "bf16", "fastcam/triton", 32, None, note="not measured: x")]
    checks = [gc.Check("gradcam fp32 fastcam/triton vs fastcam/cuda", 2e-7, 1e-3, True),
              gc.Check("opticam bf16 a vs b", 0.3, None, True, "reported only")]
    env = dict(device="cuda", gpu="H200", capability="9.0", torch="2.11", cuda="12.8",
               triton="3.6", python="3.12.1", git="abc")
    tests = dict(tests=2, passed=2, failed=[], skipped=[])
    gc.write(str(tmp_path), rows, checks, env, tests, True)
    md = (tmp_path / "gpu_check.md").read_text()
    lines = md.splitlines()
    assert "| method | batch | precision | fastcam/triton | fastcam/cuda | pytorch-grad-cam |" in lines
    assert "| gradcam | 32 | fp32 | 10.0 | 12.5 | 40.0 |" in lines
    assert "| gradcam | 32 | bf16 | – |  |  |" in lines
    assert "- gradcam bf16 fastcam/triton: not measured: x" in lines
    assert "| opticam bf16 a vs b (reported only) | 0.300000 | – | yes |" in lines
    assert "GPU tests: 2 passed of 2, 0 failed, 0 skipped." in lines
    import json
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert data["complete"] and data["rows"][0]["median_ms"] == 10.0 and len(data["checks"]) == 2


def test_time_refuses_to_run_without_a_gpu(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert gc.main(["time", "--out", "unused"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
