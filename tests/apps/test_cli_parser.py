"""The command line's front: help, ``--version`` and usage errors answer before
torch is imported; help reads as plain text; one ``-o`` syntax in every command;
the names the torch-free parser offers are the library's; ``explain`` draws the
whole image; ``fastcam bench`` writes its JSON and chart (timings never asserted)."""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastcam import __version__
from fastcam.apps import arguments
from fastcam.apps.cli import COMMANDS, build_parser, main
from fastcam.apps.options import method_option, options_for
from fastcam.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def test_help_version_and_usage_errors_import_no_torch():
    """Each command's help and a usage error of each, in one process that never imports torch."""
    code = r"""
import contextlib, io, sys
from fastcam.apps.cli import main
cases = [["--version"], ["--help"], ["demo", "--help"], ["explain", "--help"], ["eval", "--help"],
         ["photos", "--help"], ["bench", "--help"], ["generate", "--help"], ["explain"], ["eval", "--precision", "fp64"],
         ["bench", "--batch-size", "many"], ["demo", "-o", "nokeyvalue"], ["nosuchcommand"],
         ["generate", "--shard", "3/2"]]
for argv in cases:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as e:
            code = e.code
    print(argv[0], argv[-1], code, len(out.getvalue()) > 0, len(err.getvalue()) > 0)
print("torch" in sys.modules)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                           timeout=120, check=True).stdout.splitlines()
    assert lines[-1] == "False", lines
    codes = [line.split() for line in lines[:-1]]
    assert all(c[2] == "0" and c[3] == "True" for c in codes[:8]), codes       # help/version on stdout
    assert all(c[2] == "2" and c[4] == "True" for c in codes[8:]), codes       # usage errors on stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"fastcam {__version__}"


def _help(argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([*argv, "--help"])
    return out.getvalue()


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_is_plain_text(command):
    text = _help([command] if command else [])
    for raw in ("``", ":func:", ":class:", ":mod:", "%%", "%(default)"):
        assert raw not in text, f"{raw!r} in the help of {command}:\n{text}"
    if command is None:
        assert "--version" in text and all(c in text for c in COMMANDS)
        return
    if command != "photos":
        assert "--device" in text and "-o [METHOD.]KEY=VALUE" in text
        assert "METHOD.KEY=VALUE to that method alone" in " ".join(text.split())
    if command in ("explain", "eval", "photos", "bench", "demo"):
        assert "(default: fastcam-" in " ".join(text.split())    # --out has a default


def test_plain_text_of_rest():
    assert arguments.plain_text("Uses :func:`~fastcam.api.explain` and ``x``;\n  see :class:`A <b.A>`.\n\n"
                                "Second :mod:`fastcam.data`.") == ("Uses explain and x; see A.\n\n"
                                                                   "Second fastcam.data.")


def test_method_option_syntax():
    assert method_option("max_iter=50") == (None, "max_iter", 50)
    assert method_option("OptiCAM.max_iter=50") == ("opticam", "max_iter", 50)
    assert method_option("score-mode=logit") == (None, "score_mode", "logit")
    assert method_option("lr=0.1") == (None, "lr", 0.1)                 # a dot in the value
    assert method_option("gradcam++.precision=bf16") == ("gradcam++", "precision", "bf16")
    for bad in ("max_iter", ".max_iter=1", "opticam.=1"):
        with pytest.raises(argparse.ArgumentTypeError):
            method_option(bad)


def test_options_for_every_method_then_one():
    items = [("opticam", "max_iter", 5), (None, "precision", "bf16"), (None, "max_iter", 9)]
    got = options_for(items, ["gradcam", "opticam"], base={"opticam": {"max_iter": 50, "lr": 0.1}})
    assert got == {"gradcam": {"precision": "bf16", "max_iter": 9},
                   "opticam": {"max_iter": 5, "lr": 0.1, "precision": "bf16"}}   # METHOD. wins
    with pytest.raises(UsageError, match="'scorecam' is not among the methods"):
        options_for([("scorecam", "batch_size", 4)], ["gradcam"])


def test_one_option_syntax_in_every_command(tmp_path, capsys):
    """``-o METHOD.KEY`` naming another method is the same usage error everywhere
    (generate included), before any work; ``-o KEY=VALUE`` parses everywhere."""
    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(images / "a.png")
    argvs = {"demo": ["demo", "--methods", "gradcam"],
             "explain": ["explain", str(images / "a.png"), "--method", "gradcam"],
             "eval": ["eval", "--images", str(images), "--methods", "gradcam"],
             "bench": ["bench", "--methods", "gradcam"],
             "generate": ["generate", "--images", str(images), "--method", "gradcam"]}
    for command, argv in argvs.items():
        out = ["--out", str(tmp_path / ("s.zarr" if command == "generate" else command))]
        assert main([*argv, *out, "-o", "scorecam.batch_size=4"]) == 2, command
        assert "'scorecam' is not among the methods" in capsys.readouterr().err, command
        args = build_parser([command]).parse_args([*argv, *out, "-o", "batch_size=4"])
        assert args.option == [(None, "batch_size", 4)], command


def test_parser_names_are_the_librarys():
    from fastcam.backend import BACKENDS
    from fastcam.evaluation.published import PUBLISHED
    from fastcam.evaluation.runner import METRICS
    from fastcam.models.loading import BUNDLED
    from fastcam.generation.config import DTYPES, SAVES
    from fastcam.generation.decode import PREPROCESS
    from fastcam.generation.fingerprint import FINGERPRINTS
    from fastcam.generation.run import EXECUTORS
    from fastcam.preflight import PRECISION_CHOICES

    assert arguments.PRECISIONS == tuple(PRECISION_CHOICES)
    assert arguments.GENERATE_DTYPES == tuple(sorted(DTYPES)) and arguments.GENERATE_SAVES == SAVES
    assert arguments.FINGERPRINTS == FINGERPRINTS and arguments.EXECUTORS == EXECUTORS
    assert arguments.PREPROCESS_CHOICES == PREPROCESS
    assert arguments.BUNDLED == BUNDLED and arguments.BACKENDS == BACKENDS
    assert arguments.METRIC_NAMES == tuple(METRICS)
    assert arguments.PUBLISHED_NAMES == tuple(sorted(PUBLISHED))


def test_explain_draws_the_whole_image_with_the_class(tmp_path, capsys):
    rng = np.random.default_rng(0)
    pixels = (rng.random((60, 120, 3)) * 255).astype(np.uint8)           # wide: the crop drops the sides
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    assert main(["explain", str(tmp_path / "wide.png"), "--model", "torchvision:resnet18", "--size", "64",
                 "--target", "7", "--out", str(tmp_path / "o")]) == 0
    assert "explained class 7 cock" in capsys.readouterr().out
    with Image.open(tmp_path / "o" / "wide_gradcam.png") as im:
        drawn = np.asarray(im.convert("RGB"))
    band = 18
    assert drawn.shape == (60 + band, 120, 3)
    body, title = drawn[band:], drawn[:band]
    # 60x120 -> 73x146, crop columns 41..105 of the resized: original columns ~28..91
    assert np.array_equal(body[:, :26], pixels[:, :26]) and np.array_equal(body[:, 94:], pixels[:, 94:])
    assert np.abs(body[:, 30:90].astype(int) - pixels[:, 30:90]).mean() > 10     # the heat map
    assert (title < 128).any() and (title == 255).mean() > 0.5                    # dark text on white


def test_bench_writes_json_and_chart(tmp_path, capsys):
    out = tmp_path / "b"
    rc = main(["bench", "--model", "torchvision:resnet18", "--size", "64", "--batch-size", "2",
               "--methods", "cam,gradcam", "--repeats", "2", "--warmup", "0", "--peers", "--out", str(out)])
    assert rc == 0
    report = json.loads((out / "bench.json").read_text())
    for key in ("fastcam", "torch", "device", "model", "layer", "batch_size", "size", "repeats", "warmup",
                "rows", "skipped", "command"):
        assert key in report, key
    assert report["device"] == "cpu" and report["batch_size"] == 2 and report["layer"] == "layer4"
    assert report["backend"] == "cpp"
    rows = {(r["method"], r["library"], r["precision"]): r for r in report["rows"]}
    expected = {("cam", "fastcam", "fp32"), ("gradcam", "fastcam", "fp32"), ("cam", "torchcam", "fp32"),
                ("gradcam", "pytorch-grad-cam", "fp32"), ("gradcam", "torchcam", "fp32"),
                ("gradcam", "captum", "fp32")}
    assert set(rows) == expected and report["skipped"] == []      # every peer is in the test extra
    for row in rows.values():
        assert row["calls"] == 2 and len(row["seconds"]) == 2 and row["peak_memory_mib"] is None
        assert row["images_per_s"] > 0 and row["ms_per_image"]["median"] > 0
        assert row["ms_per_image"]["iqr"] >= 0
    assert set(rows["gradcam", "fastcam", "fp32"]["speedup"]) == {"pytorch-grad-cam", "torchcam", "captum"}
    assert set(rows["cam", "fastcam", "fp32"]["speedup"]) == {"torchcam"}
    with Image.open(out / "bench.png") as im:
        assert im.format == "PNG"
    printed = capsys.readouterr().out
    assert "img/s" in printed and "ms/img" in printed and "bench.json" in printed


def test_bench_usage_errors_come_before_any_work(tmp_path, capsys, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("the model was loaded before the arguments were checked")
    monkeypatch.setattr("fastcam.apps.bench.load_model", fail)
    for extra in (["--precision", "fp64"], ["--methods", "nope"], ["--repeats", "0"],
                  ["--device", "cpu", "--backend", "cuda"]):
        assert main(["bench", "--out", str(tmp_path), *extra]) == 2
        assert capsys.readouterr().err.startswith("fastcam bench: error:")
