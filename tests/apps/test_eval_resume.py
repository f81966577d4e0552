"""Resumable `fastcam eval`: kill -9 in the middle of a run, resume it, and get the
same per-image table as an uninterrupted run; what a resume refuses. Tiny
synthetic images and a seeded random ResNet-18 at 64 px, one thread per process."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastcam.apps.cli import main
from fastcam.evaluation.parts import PARTS_DIR

N_IMAGES, METHODS = 8, ["gradcam"]
PARTS = N_IMAGES * len(METHODS)                   # --batch-size 1: one part per image and method
ARGS = ["--model", "torchvision:resnet18", "--size", "64", "--preprocess", "resize", "--no-progress",
        "--methods", ",".join(METHODS), "--metrics", "ad,insertion,sparseness", "--steps", "3",
        "--batch-size", "1"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(d / f"im{i}.png")
    (d / "labels.csv").write_text("".join(f"im{i},{i}\n" for i in range(N_IMAGES)))
    return d


def _cmd(images: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fastcam", "eval", "--images", str(images), "--labels",
            str(images / "labels.csv"), "--out", str(out), *ARGS, *extra]


def _env() -> dict:
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
            "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _parts(out: Path) -> list[Path]:
    return sorted((out / PARTS_DIR).glob("*/*.csv"))


def test_kill_9_then_resume_gives_the_uninterrupted_table(images, tmp_path, capsys):
    ref_out, out = tmp_path / "reference", tmp_path / "killed"
    proc = subprocess.Popen(_cmd(images, out), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while len(_parts(out)) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not commit 3 parts"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    committed = len(_parts(out))
    assert 3 <= committed < PARTS, committed
    assert not (out / "eval_per_image.csv").exists()

    assert main(_cmd(images, out, "--resume")[3:]) == 0              # resumed here, in this process
    assert f"resumed: {committed} of {PARTS} part(s)" in capsys.readouterr().out
    assert main(_cmd(images, ref_out)[3:]) == 0                       # the uninterrupted run
    assert (out / "eval_per_image.csv").read_text() == (ref_out / "eval_per_image.csv").read_text()
    # the committed parts too, each value as repr wrote it (bit for bit)
    assert [p.relative_to(out) for p in _parts(out)] == [p.relative_to(ref_out) for p in _parts(ref_out)]
    for a, b in zip(_parts(out), _parts(ref_out)):
        assert a.read_text() == b.read_text(), a.name


def test_resume_refuses_other_settings_and_pandas_reads_the_parts(images, tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    out = tmp_path / "run"
    argv = ["eval", "--images", str(images), "--labels", str(images / "labels.csv"), "--out", str(out), *ARGS]
    small = [{"ad,insertion,sparseness": "sparseness", "torchvision:resnet18": "torchvision:mobilenet_v3_small"}
             .get(a, a) for a in argv]
    assert main(small) == 0
    table = pd.concat(map(pd.read_csv, _parts(out)))
    assert len(table) == PARTS and set(table["method"]) == set(METHODS)
    per_image = pd.read_csv(out / "eval_per_image.csv")
    merged = per_image.merge(table, on=["image", "method"], suffixes=("", "_part"))
    np.testing.assert_allclose(merged["sparseness"], merged["sparseness_part"], rtol=1e-5)
    capsys.readouterr()
    assert main([*small, "--resume"]) == 0                             # finished: all read back
    assert f"resumed: {PARTS} of {PARTS}" in capsys.readouterr().out
    before = (out / "eval_per_image.csv").read_text()
    _parts(out)[2].unlink()                                            # an unfinished run
    torn = _parts(out)[0].parent / ".0000002-0000003.csv.0123abcd.tmp"  # and a write a kill cut short
    torn.write_text("image,meth")
    assert main(small) == 2                                            # is not thrown away without --resume
    assert "pass --resume" in capsys.readouterr().err and len(_parts(out)) == PARTS - 1
    assert main([*small, "--resume"]) == 0
    assert f"resumed: {PARTS - 1} of {PARTS}" in capsys.readouterr().out and not torn.exists()
    assert (out / "eval_per_image.csv").read_text() == before
    other = [a if a != "3" else "5" for a in small]                    # --steps 5
    assert main([*other, "--resume"]) == 2
    assert "steps differ" in capsys.readouterr().err
