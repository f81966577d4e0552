"""`fastcam generate`: bad inputs recorded, one process vs two (torchrun) give the
same store, kill -9 then resume gives the same store, a store made by other
arguments refuses to resume. Tiny crops of the bundled real photos, size 64,
Grad-CAM on the bundled EfficientNet-Lite0.

Every run uses one intra-op thread (torchrun's default for several processes):
CPU convolutions round differently with another thread count, so bitwise
equality needs the same one."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import fastcam
from fastcam.apps.cli import main
from _generate_helpers import BATCH, SIZE, assert_same_store, make_images
from _generate_helpers import store_files as _files
from fastcam.generation import STATUS_DONE, STATUS_FAILED, GenerateError, read_store

ARGS = ["--size", str(SIZE), "--batch-size", str(BATCH), "--workers", "1", "--no-progress", "--max-failed", "2"]


def _decoded(path) -> torch.Tensor:
    """The run's input for an image: uint8 decoding, in [0, 1]."""
    from fastcam.generation.decode import decode_uint8

    return decode_uint8(Path(path).read_bytes(), SIZE).image.float() / 255


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _torchrun(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "fastcam", "generate", *args]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("generate") / "images"
    make_images(folder)
    return folder


@pytest.fixture(scope="module")
def reference(images, tmp_path_factory):
    """The uninterrupted single-process store (in this process, one thread)."""
    out = tmp_path_factory.mktemp("generate") / "reference.zarr"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = fastcam.generate(images, out, "gradcam", size=SIZE, batch_size=BATCH, workers=1,
                                   progress=False, verbose=False)
    finally:
        torch.set_num_threads(threads)
    return out, summary


def test_store_records_bad_and_converted_images(images, reference):
    out, summary = reference
    s = read_store(out)
    paths = list(s["path"])
    assert paths == sorted(paths) and len(paths) == 25 and "notes.txt" not in paths
    assert "sub/deeper/photo02.png" in paths
    status = dict(zip(paths, s["status"]))
    errors = dict(zip(paths, s["error"]))
    for bad in ("corrupt.jpg", "truncated.jpg"):
        assert status[bad] == STATUS_FAILED and errors[bad]
    assert "truncated" in errors["truncated.jpg"]
    assert str(images) not in errors["corrupt.jpg"]       # paths as stored, not the folder's location
    for converted in ("gray.png", "rgba.png", "sub/sixteen.png"):
        assert status[converted] == STATUS_DONE and errors[converted] == ""
    done = s["status"] == STATUS_DONE
    assert done.sum() == 23
    maps = s["maps"]
    assert maps.dtype == np.float16 and maps.shape == (25, SIZE, SIZE)
    assert np.isnan(maps[~done]).all() and not np.isnan(maps[done]).any()
    assert maps[done].min() >= 0 and maps[done].max() <= 1
    assert (s["predicted"][done] >= 0).all() and (s["predicted"][~done] == -1).all()
    assert np.array_equal(s["target"][done], s["predicted"][done])
    assert ((s["probability"][done] > 0) & (s["probability"][done] <= 1)).all()
    meta = s["attrs"]["fastcam"]
    assert meta["method"] == "gradcam" and meta["model"] == "efficientnet_lite0"
    assert meta["layer"] == "_head_act" and meta["dtype"] == "float16" and meta["size"] == SIZE
    assert meta["precision"] == "fp32" and "precision" not in meta["options"]
    assert meta["fastcam_version"] == fastcam.__version__ and meta["complete"] is True
    assert (meta["n_done"], meta["n_failed"]) == (23, 2)
    assert (summary.computed, summary.computed_failed, summary.failed, summary.pending) == (25, 2, 2, 0)
    # the maps are the library's maps for the same preprocessing (uint8 decoding, within a
    # rounding step of fastcam's float preprocessing)
    from fastcam.generation.decode import decode_uint8

    model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
    decoded = decode_uint8((images / "rgba.png").read_bytes(), SIZE)
    x = decoded.image[None].float() / 255
    assert (x - fastcam.data.load_image(images / "rgba.png", SIZE)[None]).abs().max() <= 1.5 / 255
    ref = fastcam.explain(model, x, "gradcam", "_head_act", normalize=model.normalization)
    np.testing.assert_allclose(maps[paths.index("rgba.png")], ref[0].numpy(), atol=2e-3)


def test_rerun_skips_everything(images, reference, capsys):
    out, _ = reference
    before = _files(out)
    assert main(["generate", "--images", str(images), "--out", str(out), *ARGS]) == 0
    printed = capsys.readouterr().out
    assert "0 image(s)" in printed and "25 already in the store" in printed and "2 failed" in printed
    assert _files(out) == before


def test_two_processes_give_the_same_store(images, reference, tmp_path):
    out = tmp_path / "two.zarr"
    proc = _torchrun("--images", str(images), "--out", str(out), *ARGS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("on 2 process(es)") == 1          # rank 0 prints the summary
    assert_same_store(reference[0], out)


def test_kill_9_then_resume_on_two_processes(images, reference, tmp_path):
    # The copy lists its files in a text file; the 11th (sorted) path is a FIFO, so
    # the run blocks in chunk 2 after writing chunks 0 and 1, and is killed there.
    folder = tmp_path / "images"
    shutil.copytree(images, folder)
    paths = read_store(reference[0])["path"].tolist()
    blocker = folder / paths[10]
    blocker.unlink()
    os.mkfifo(blocker)
    listing = folder / "list.txt"
    listing.write_text("\n".join(paths) + "\n")
    out = tmp_path / "killed.zarr"
    cmd = [sys.executable, "-m", "fastcam", "generate", "--images", str(listing), "--out", str(out), *ARGS]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not all((out / "status" / "c" / str(c)).exists() for c in (0, 1)):
            assert proc.poll() is None and time.monotonic() < deadline, "the run did not reach chunk 2"
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)          # the run and its loader worker
        proc.wait()
    partial = read_store(out)
    assert (partial["status"][:8] != 0).all() and (partial["status"][8:] == 0).all()
    blocker.unlink()
    shutil.copy2(images / paths[10], blocker)      # the same file again: size and mtime (its fingerprint)
    result = _torchrun("--images", str(listing), "--out", str(out), *ARGS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "8 already in the store" in result.stdout
    assert_same_store(reference[0], out, ignore_attrs=("images",), same_sources=False)


def test_other_arguments_refuse_to_resume(images, reference, capsys):
    out, _ = reference
    before = _files(out)
    with pytest.raises(GenerateError, match="method: store has \"gradcam\", this run \"gradcam\\+\\+\""):
        fastcam.generate(images, out, "gradcam++", size=SIZE, batch_size=BATCH, progress=False)
    with pytest.raises(GenerateError, match="has no option"):
        fastcam.generate(images, out, "gradcam", options={"max_iter": 3}, size=SIZE, progress=False)
    assert main(["generate", "--images", str(images), "--out", str(out), "--method", "opticam",
                 "-o", "max_iter=5", *ARGS]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different run" in err[0] and "opticam" in err[0]
    assert main(["generate", "--images", str(images), "--out", str(out), "--dtype", "float32", *ARGS]) == 2
    assert "dtype" in capsys.readouterr().err
    assert _files(out) == before


def test_clear_errors(images, tmp_path, capsys):
    out = str(tmp_path / "x.zarr")
    cases = [
        (["--model", "torchvision:resnet18", "--weights", str(tmp_path / "missing.pt")], "no such file"),
        (["--model", "nope"], "--model 'nope'"),
        (["--layer", "_head_ac"], "did you mean"),
        (["--method", "nope"], "unknown method"),
    ]
    torch.save({"fc.weight": torch.zeros(3, 3)}, tmp_path / "small.pt")
    cases.append((["--model", "torchvision:resnet18", "--weights", str(tmp_path / "small.pt")],
                  "does not match the model"))
    for extra, message in cases:
        assert main(["generate", "--images", str(images), "--out", out, *ARGS, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not os.path.exists(out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.bin").write_bytes(b"1")
    assert main(["generate", "--images", str(images), "--out", str(tmp_path / "other"), *ARGS]) == 2
    assert "not a fastcam store" in capsys.readouterr().err
    assert (tmp_path / "other" / "data.bin").exists()


def test_other_options_refuse_to_resume(images, tmp_path):
    four = [str(p) for p in sorted(images.rglob("photo0[0-3].*"))]
    out = tmp_path / "opti.zarr"
    kw = dict(size=SIZE, batch_size=BATCH, workers=0, progress=False, verbose=False)
    summary = fastcam.generate(four, out, "opticam", options={"max_iter": 1}, **kw)
    assert summary.done == 4
    assert read_store(out)["attrs"]["fastcam"]["options"]["max_iter"] == 1
    with pytest.raises(GenerateError, match="options: store has .*\"max_iter\": 1.*\"max_iter\": 2"):
        fastcam.generate(four, out, "opticam", options={"max_iter": 2}, **kw)
    with pytest.raises(GenerateError, match="image list differs"):
        fastcam.generate(four[:3], out, "opticam", options={"max_iter": 1}, **kw)
    # the default spelled out is the same run
    assert fastcam.generate(four, out, "opticam", options={"max_iter": 1, "lr": 0.1}, **kw).skipped == 4


def test_config_is_what_the_store_checks():
    from dataclasses import fields

    from fastcam.generation.config import RunConfig
    from fastcam.generation.store import CHECKED_KEYS

    assert ("format", *(f.name for f in fields(RunConfig))) == CHECKED_KEYS


def test_compute_chunk_records_failed_images_and_repeats_itself():
    from fastcam.generation.compute import compute_chunk
    from fastcam.generation.dataset import ChunkBatch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
    x = torch.rand(2, 3, 16, 16)
    batch = ChunkBatch(torch.arange(4, 7), x, torch.tensor([True, False, True]), ["", "OSError: bad", ""])
    cam = fastcam.GradCAM(net, target_layers=["1"])
    kw = dict(seed=3, size=16, dtype=torch.float16, device=torch.device("cpu"))
    r = compute_chunk(cam, batch, np.array([0, 1, 2]), **kw)
    assert list(r.status) == [STATUS_DONE, STATUS_FAILED, STATUS_DONE] and r.error[1] == "OSError: bad"
    assert r.maps.dtype == np.float16 and r.maps.shape == (3, 16, 16)
    assert np.isnan(r.maps[1]).all() and not np.isnan(r.maps[[0, 2]]).any()
    assert list(r.target) == [0, -1, 2] and r.predicted[1] == -1 and np.isnan(r.probability[1])
    again = compute_chunk(cam, batch, np.array([0, 1, 2]), **kw)
    for name, a in r._asdict().items():
        np.testing.assert_array_equal(a, getattr(again, name), err_msg=name)


# -- precision ------------------------------------------------------------------------
def _native(precision: str) -> bool:
    from fastcam.engine import check_precision

    try:
        check_precision(precision, torch.device("cpu"))
    except ValueError:
        return False
    return True


def _pearson(a, b):
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.mark.skipif(not _native("bf16"), reason="this CPU has no native bf16")
def test_precision_is_recorded_and_another_is_refused(images, tmp_path, capsys):
    four = [str(p) for p in sorted(images.rglob("photo0[0-3].*"))]
    listing = tmp_path / "four.txt"
    listing.write_text("\n".join(four) + "\n")
    out = tmp_path / "bf16.zarr"
    kw = dict(size=SIZE, batch_size=BATCH, workers=0, progress=False, verbose=False)
    assert fastcam.generate(four, out, "gradcam", precision="bf16", **kw).done == 4
    s = read_store(out)
    meta = s["attrs"]["fastcam"]
    assert meta["precision"] == "bf16" and "precision" not in meta["options"]
    # the maps are bf16's: close to the library's fp32 maps, not equal to them
    model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
    x = torch.stack([_decoded(p) for p in four])
    ref = fastcam.explain(model, x, "gradcam", "_head_act", targets=torch.as_tensor(s["target"]).long(),
                          normalize=model.normalization).numpy()   # bf16 may flip a close prediction
    assert min(_pearson(a, b) for a, b in zip(s["maps"].astype(np.float32), ref)) >= 0.99
    assert np.abs(s["maps"] - ref).max() > 2e-3
    before = _files(out)
    with pytest.raises(GenerateError, match='precision: store has "bf16", this run "fp32"'):
        fastcam.generate(four, out, "gradcam", **kw)
    assert main(["generate", "--images", str(listing), "--out", str(out), *ARGS, "--precision", "fp32"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'precision: store has "bf16", this run "fp32"' in err[0], err
    assert _files(out) == before
    assert main(["generate", "--images", str(listing), "--out", str(out), *ARGS, "--precision", "bf16"]) == 0
    assert "4 already in the store" in capsys.readouterr().out
    # --verify says how the store was computed and checks a precision it is given
    assert main(["generate", "--verify", "--out", str(out)]) == 0
    assert "precision bf16" in capsys.readouterr().out
    assert main(["generate", "--verify", "--out", str(out), "--precision", "bf16"]) == 0
    assert main(["generate", "--verify", "--out", str(out), "--images", str(listing), "--precision", "fp32"]) == 1
    printed = capsys.readouterr().out
    assert "computed in bf16, not fp32" in printed and "made by another run" in printed
    assert _files(out) == before


@pytest.mark.skipif(not _native("bf16"), reason="this CPU has no native bf16")
def test_a_store_made_before_precision_counts_as_fp32(images, reference, tmp_path):
    import zarr

    out = tmp_path / "old.zarr"
    shutil.copytree(reference[0], out)
    group = zarr.open_group(str(out), mode="r+")
    meta = dict(group.attrs["fastcam"])
    del meta["precision"]
    group.attrs.update({"fastcam": meta})
    kw = dict(size=SIZE, batch_size=BATCH, workers=0, progress=False, verbose=False)
    assert fastcam.generate(images, out, "gradcam", **kw).skipped == 25
    with pytest.raises(GenerateError, match='precision: store has "fp32", this run "bf16"'):
        fastcam.generate(images, out, "gradcam", precision="bf16", **kw)


@pytest.fixture
def no_bf16(monkeypatch):
    """A CPU without AVX512-BF16/AMX: oneDNN reports no bf16 support."""
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)


def test_precision_errors_come_before_any_work(images, tmp_path, capsys, monkeypatch, no_bf16):
    import importlib

    def fail(*a, **k):
        raise AssertionError("the model was loaded before the arguments were checked")
    monkeypatch.setattr(importlib.import_module("fastcam.generation.protocol"), "load_model", fail)
    out = tmp_path / "s.zarr"
    with pytest.raises(GenerateError, match="--precision bf16: precision='bf16' cannot run on cpu"):
        fastcam.generate(images, out, "gradcam", precision="bf16", size=SIZE, progress=False)
    with pytest.raises(GenerateError, match="precision must be one of"):
        fastcam.generate(images, out, "gradcam", precision="fp64", size=SIZE, progress=False)
    assert main(["generate", "--images", str(images), "--out", str(out), *ARGS, "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot run on cpu" in err[0] and "use precision='fp32'" in err[0], err
    with pytest.raises(SystemExit) as e:
        main(["generate", "--images", str(images), "--out", str(out), *ARGS, "--precision", "fp64"])
    assert e.value.code == 2 and "invalid choice: 'fp64'" in capsys.readouterr().err
    assert not out.exists()


def test_precision_is_not_a_method_option_of_generate(images, tmp_path, capsys):
    out = tmp_path / "s.zarr"
    assert main(["generate", "--images", str(images), "--out", str(out), *ARGS, "-o", "precision=bf16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "precision is not a method option: use --precision" in err[0], err
    assert not out.exists()


def test_a_store_made_before_the_compile_option_resumes_as_an_eager_run():
    from fastcam.generation.store import describe_mismatch

    old = {"method": "gradcam", "options": {"normalize": None}}        # no "compile" recorded
    assert describe_mismatch(old, {"method": "gradcam", "options": {"normalize": None, "compile": False}}) \
        == describe_mismatch({**old, "options": {"normalize": None, "compile": False}},
                             {"method": "gradcam", "options": {"normalize": None, "compile": False}})
    assert not [d for d in describe_mismatch(old, {"method": "gradcam",
                                                   "options": {"normalize": None, "compile": False}})
                if d.startswith("options")]
    assert [d for d in describe_mismatch(old, {"method": "gradcam",
                                               "options": {"normalize": None, "compile": True}})
            if d.startswith("options")]
