"""`fastcam demo` end to end on the bundled model and real photos, and the
``--precision`` flag of ``demo`` and ``explain`` (``generate``'s is in
tests/apps/test_generate.py): a bad value is a usage error, a precision the CPU
cannot run is a one-line error before any work, never a silent fallback."""

import numpy as np
import pytest
import torch

import fastcam
import fastcam.engine
from PIL import Image

from fastcam.apps.cli import DEFAULT_DEMO_METHODS, build_parser, main
from fastcam.engine import check_precision
from fastcam.methods import METHODS, PEER_METHODS

#: a tiny demo: 1 photo at 64x64, Opti-CAM at 2 iterations (the full demo is too slow for the suite)
TINY = ["--photos", "1", "--size", "64", "-o", "opticam.max_iter=2"]


def _bf16_native() -> bool:
    return fastcam.engine.cpu_supports(torch.bfloat16)   # what check_precision asks on a CPU


needs_bf16 = pytest.mark.skipif(not _bf16_native(), reason="this CPU has no native bf16")


@pytest.fixture
def no_bf16(monkeypatch):
    """A CPU without AVX512-BF16/AMX: oneDNN reports no bf16 support."""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)


@pytest.fixture
def no_model(monkeypatch):
    """Loading the model fails the test: the checks must come first."""
    def fail(*a, **k):
        raise AssertionError("the model was loaded before the arguments were checked")
    monkeypatch.setattr("fastcam.models.efficientnet_lite0", fail)
    monkeypatch.setattr("fastcam.apps.evaluate.load_model", fail)


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err
    return err[0]


def test_demo_writes_grid_and_prints_classes(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--methods", "gradcam,cam", "--photos", "2",
                 "--precision", "fp32"]) == 0
    printed = capsys.readouterr().out
    assert "chelsea" in printed and "espresso" in printed
    assert "precision fp32 (as asked)" in printed
    path = tmp_path / "demo_grid.png"
    assert str(path.resolve()) in printed
    with Image.open(path) as im:
        w, h = im.size
    assert w > h            # 2 rows of photos, 3 columns


def test_demo_rejects_unknown_method(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--methods", "nope"]) == 2
    assert "unknown method" in capsys.readouterr().err


def test_demo_shows_all_eight_methods_by_default():
    args = build_parser().parse_args(["demo"])
    assert args.methods.split(",") == list(DEFAULT_DEMO_METHODS)
    # every method under its first name, but Fake-CAM (a control map that explains nothing)
    assert set(DEFAULT_DEMO_METHODS) == {m for m, cls in METHODS.items()
                                         if next(k for k, v in METHODS.items() if v is cls) == m
                                         } - {"fakecam"} - set(PEER_METHODS)
    assert len(DEFAULT_DEMO_METHODS) == 8 and args.precision == "fp32"


def test_demo_every_method_tiny(tmp_path, capsys):
    asked = "auto"
    precision = "bf16" if _bf16_native() else "fp32"
    assert main(["demo", "--out", str(tmp_path), *TINY, "--precision", asked]) == 0
    printed = capsys.readouterr().out
    header = printed.splitlines()[0]
    assert "8 methods:" in header and "opticam (2 iterations)" in header
    assert f"precision {precision} ({'auto:' if asked == 'auto' else 'as asked'}" in header
    for method in DEFAULT_DEMO_METHODS:
        assert f"  {method:<10} 1 maps in" in printed
    with Image.open(tmp_path / "demo_grid.png") as im:
        w, h = im.size
    assert w > 4 * h        # 1 row, 9 columns


def test_demo_auto_precision_says_why_it_is_fp32(tmp_path, capsys, no_bf16):
    assert main(["demo", "--out", str(tmp_path), "--methods", "gradcam", *TINY[:4],
                 "--precision", "auto"]) == 0
    assert "precision fp32 (auto: cpu has no native bf16" in capsys.readouterr().out


@needs_bf16
def test_demo_auto_precision_is_bf16_where_native(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--methods", "gradcam,liftcam", *TINY[:4],
                 "--precision", "auto"]) == 0
    assert "precision bf16 (auto: cpu runs bf16 natively" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["demo", "explain"])
def test_bad_precision_value_is_a_usage_error(tmp_path, capsys, command):
    argv = {"demo": ["demo", "--out", str(tmp_path)],
            "explain": ["explain", "x.png", "--out", str(tmp_path)]}[command]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--precision", "fp64"])
    assert e.value.code == 2
    assert "invalid choice: 'fp64'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["demo", "explain"])
def test_unsupported_precision_fails_before_any_work(tmp_path, capsys, no_bf16, no_model, command):
    out = tmp_path / "o"
    argv = {"demo": ["demo", "--out", str(out)],
            "explain": ["explain", str(tmp_path / "x.png"), "--out", str(out)]}[command]
    assert main([*argv, "--precision", "bf16"]) == 2
    _one_line_error(capsys, f"fastcam {command}: error: --precision bf16", "cannot run on cpu",
                    "use precision='fp32'")
    assert not out.exists()


def test_unknown_precision_of_the_engine_is_reported(tmp_path, capsys, monkeypatch, no_model):
    # the check goes through fastcam.engine.check_precision (whatever it decides)
    def refuse(precision, device=None):
        if precision != "fp32":
            raise ValueError(f"precision={precision!r} cannot run on {device}: refused by the test")
    monkeypatch.setattr("fastcam.engine.check_precision", refuse)
    assert main(["explain", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"),
                 "--precision", "fp16"]) == 2
    _one_line_error(capsys, "--precision fp16", "refused by the test")


def _photo_file(tmp_path):
    from fastcam.data import photo_array

    path = tmp_path / "chelsea.png"
    Image.fromarray(np.asarray(photo_array("chelsea"))).save(path)
    return path


def test_explain_precision_conflicting_with_the_method_option(tmp_path, capsys, no_model):
    assert main(["explain", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"), "--precision", "fp32",
                 "-o", "gradcam.precision=bf16"]) == 2
    _one_line_error(capsys, "--precision fp32 and -o gradcam.precision=bf16 disagree")


@needs_bf16
def test_explain_bf16_maps_follow_the_fp32_maps(tmp_path, capsys):
    path = _photo_file(tmp_path)
    maps = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        assert main(["explain", str(path), "--out", str(out), "--size", "96", "--method", "gradcam++",
                     "--precision", precision]) == 0
        maps[precision] = np.load(out / "chelsea_gradcam++.npy")
    a, b = (m.ravel() - m.mean() for m in (maps["fp32"], maps["bf16"]))
    r = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
    assert r >= 0.99, r
    assert not np.array_equal(maps["fp32"], maps["bf16"])      # bf16 really ran


def test_entry_points_run_the_apps_main():
    """The console script (pyproject's [project.scripts]), ``python -m fastcam`` and the
    former path ``fastcam.cli`` all run :func:`fastcam.apps.cli.main`."""
    import importlib
    import os
    import subprocess
    import sys
    from pathlib import Path

    import fastcam.cli

    root = Path(__file__).resolve().parents[2]
    scripts = [line for line in (root / "pyproject.toml").read_text().splitlines()
               if line.startswith("fastcam = ")]
    assert scripts == ['fastcam = "fastcam.apps.cli:main"']
    module, _, name = scripts[0].split('"')[1].partition(":")
    assert getattr(importlib.import_module(module), name) is main is fastcam.cli.main
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", "fastcam", "--help"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0 and all(c in out.stdout for c in ("demo", "generate", "explain", "eval"))
    out = subprocess.run([sys.executable, "-m", "fastcam", "demo", "--help"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0 and "--precision" in out.stdout and "--device" in out.stdout
