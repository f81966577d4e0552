"""Reliability of the command line: argument checks before any work (one-line
errors, exit 2), ``fastcam eval``'s label and box files checked whole, and
``fastcam generate``'s image fingerprints, resume after changes and ``--verify``."""
import importlib
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import fastcam
from fastcam.apps.cli import main
from fastcam.evaluation import EvalError, files
from fastcam.generation import read_store

SIZE = 64
GEN = ["--size", str(SIZE), "--batch-size", "2", "--workers", "0", "--no-progress"]


@pytest.fixture
def images(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray((rng.random((72, 80, 3)) * 255).astype(np.uint8)).save(d / f"im{i}.png")
    return d


@pytest.fixture
def no_model(monkeypatch):
    """Loading a model fails the test: the checks must come first."""
    def fail(*a, **k):
        raise AssertionError("the model was loaded before the arguments were checked")
    monkeypatch.setattr("fastcam.apps.evaluate.load_model", fail)
    monkeypatch.setattr(importlib.import_module("fastcam.generation.protocol"), "load_model", fail)
    monkeypatch.setattr("fastcam.models.efficientnet_lite0", fail)


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err
    return err[0]


# -- item 6: arguments checked before any work ---------------------------------------
def _commands(images, out):
    img = str(images / "im0.png")
    return {"explain": ["explain", img, "--out", out],
            "photos": ["photos", "--out", out],
            "demo": ["demo", "--out", out, "--methods", "cam"],
            "generate": ["generate", "--images", str(images), "--out", out, *GEN]}


@pytest.mark.parametrize("command", ["explain", "photos", "demo", "generate"])
def test_out_an_existing_file(images, tmp_path, capsys, no_model, command):
    f = tmp_path / "somefile"
    f.write_text("x")
    assert main(_commands(images, str(f))[command]) == 2
    _one_line_error(capsys, "is a file, not a folder")
    assert f.read_text() == "x"


@pytest.mark.parametrize("command", ["explain", "photos", "generate"])
@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_out_not_writable(images, tmp_path, capsys, no_model, command, where):
    # root writes through chmod; a path below a file, or in /proc, fails for root too
    if where == "under_a_file":
        (tmp_path / "somefile").write_text("x")
        out = str(tmp_path / "somefile" / "sub")
    else:
        out = "/proc/fastcam-test-out"
    assert main(_commands(images, out)[command]) == 2
    _one_line_error(capsys, "--out")


def test_unknown_method_option(images, tmp_path, capsys, no_model):
    assert main(["explain", str(images / "im0.png"), "--out", str(tmp_path / "o"),
                 "-o", "gradcam.foo=1"]) == 2
    _one_line_error(capsys, "has no option(s) ['foo']")
    assert main(["eval", "--images", str(images), "--out", str(tmp_path / "o"), "--methods", "gradcam",
                 "-o", "gradcam.foo=1"]) == 2
    _one_line_error(capsys, "has no option(s) ['foo']")


@pytest.mark.parametrize("size", ["16", "0", "63"])
def test_size_below_the_minimum(images, tmp_path, capsys, no_model, size):
    assert main(["explain", str(images / "im0.png"), "--out", str(tmp_path / "o"), "--size", size]) == 2
    _one_line_error(capsys, f"--size {size}", "at least 64")
    assert main(["generate", "--images", str(images), "--out", str(tmp_path / "s.zarr"),
                 *GEN, "--size", size]) == 2
    _one_line_error(capsys, "at least 64")
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "o").exists()


def test_minimum_size_runs(images, tmp_path):
    assert main(["explain", str(images / "im0.png"), "--out", str(tmp_path), "--size", "64"]) == 0
    m = np.load(tmp_path / "im0_gradcam.npy")
    assert m.shape == (64, 64) and m.max() > m.min()     # a 2x2 layer: not a constant map


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("command", ["explain", "demo", "generate", "eval"])
def test_cuda_without_a_gpu(images, tmp_path, capsys, no_model, command):
    argv = {**_commands(images, str(tmp_path / "o")),
            "eval": ["eval", "--images", str(images), "--out", str(tmp_path / "o")]}[command]
    assert main([*argv, "--device", "cuda"]) == 2
    _one_line_error(capsys, "--device 'cuda'", "no CUDA GPU")


@pytest.mark.parametrize("kind", ["binary", "folder"])
def test_eval_labels_not_a_text_file(images, tmp_path, capsys, no_model, kind):
    labels = str(images / "im0.png") if kind == "binary" else str(images)
    assert main(["eval", "--images", str(images), "--out", str(tmp_path / "o"), "--labels", labels]) == 2
    _one_line_error(capsys, "--labels", "not a UTF-8 text file" if kind == "binary" else "is a folder")


@pytest.mark.parametrize("text", ["{not json", "", '{"zarr_format": 3, "node_type": "group"'])
def test_corrupt_store_metadata(images, tmp_path, capsys, text):
    out = tmp_path / "s.zarr"
    assert main(["generate", "--images", str(images), "--out", str(out), *GEN]) == 0
    capsys.readouterr()
    (out / "zarr.json").write_text(text)
    assert main(["generate", "--images", str(images), "--out", str(out), *GEN]) == 2
    _one_line_error(capsys, str(out))
    assert main(["generate", "--verify", "--out", str(out)]) == 2
    _one_line_error(capsys, "not a readable fastcam store")


# -- item 7: label and box files -----------------------------------------------------
NAMES = ["cat.png", "dog.jpg"]


def test_labels_duplicate_with_another_class_names_the_line(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("image,class\ncat,281\ncat,282\n")
    with pytest.raises(EvalError, match=r"labels\.csv line 3: 'cat' has class 282, but line 2"):
        files.read_labels(str(p), NAMES)
    p.write_text("cat,281\ncat.png,282\n")      # two keys, one image
    with pytest.raises(EvalError, match=r"labels\.csv line 2"):
        files.read_labels(str(p), NAMES)


def test_labels_identical_duplicates_are_accepted(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("cat,281\ndog,207\ncat,281\n")
    assert files.read_labels(str(p), NAMES) == {"cat.png": 281, "dog.jpg": 207}


@pytest.mark.parametrize("first", ["cat,2.5", "cat,-1", "cat,1e3", "cat,+3"])
def test_labels_numeric_looking_first_row_is_an_error_not_a_header(tmp_path, first):
    p = tmp_path / "labels.csv"
    p.write_text(f"{first}\ndog,207\n")
    with pytest.raises(EvalError, match=r"labels\.csv line 1: class"):
        files.read_labels(str(p), NAMES)


def test_labels_header_only_on_the_first_row(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("cat,281\nimage,class\n")
    with pytest.raises(EvalError, match=r"labels\.csv line 2: class 'class': not a class index"):
        files.read_labels(str(p), NAMES)


def test_labels_and_boxes_with_a_bom(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_bytes("cat,281\ndog,207\n".encode("utf-8-sig"))
    assert files.read_labels(str(p), NAMES) == {"cat.png": 281, "dog.jpg": 207}
    b = tmp_path / "boxes.csv"
    b.write_bytes("cat,1,2,3,4\n".encode("utf-8-sig"))
    assert files.read_boxes(str(b), NAMES) == {"cat.png": [(1, 2, 3, 4)]}


def test_boxes_bad_rows_name_the_line(tmp_path):
    b = tmp_path / "boxes.csv"
    b.write_text("cat,1,2,3,4\ncat,1,x,3,4\n")
    with pytest.raises(EvalError, match=r"boxes\.csv line 2: box coordinates must be numbers"):
        files.read_boxes(str(b), NAMES)
    b.write_text("cat,1,2,3,y\n")           # numbers in it: a data row, not a header
    with pytest.raises(EvalError, match=r"boxes\.csv line 1"):
        files.read_boxes(str(b), NAMES)


def test_eval_labels_checked_before_any_image_or_map(images, tmp_path, capsys, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("images were loaded before the labels were checked")
    monkeypatch.setattr("fastcam.apps.evaluate.load_images", fail)
    labels = tmp_path / "labels.csv"
    labels.write_text("im0,1\nim1,1000\n")            # the bundled model has 1000 classes
    assert main(["eval", "--images", str(images), "--out", str(tmp_path / "o"), "--size", "64",
                 "--labels", str(labels), "--methods", "cam", "--metrics", "ad", "--no-progress"]) == 2
    _one_line_error(capsys, "labels.csv line 2: class 1000 out of range", "1000 classes")
    labels.write_text("im0,1\nim1,1\nim0,2\n")
    monkeypatch.setattr("fastcam.apps.evaluate.load_model", fail)
    assert main(["eval", "--images", str(images), "--out", str(tmp_path / "o"),
                 "--labels", str(labels)]) == 2
    _one_line_error(capsys, "labels.csv line 3")


# -- item 8: generate fingerprints, resume and --verify ---------------------------------
def _generate(images, out, *extra):
    return main(["generate", "--images", str(images), "--out", str(out), *GEN, *extra])


def _replace(path, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((72, 80, 3)) * 255).astype(np.uint8)).save(path)


def test_changed_image_is_recomputed_on_resume(images, tmp_path, capsys):
    out = tmp_path / "s.zarr"
    assert _generate(images, out) == 0
    before = read_store(out)
    assert before["attrs"]["fastcam"]["fingerprint"] == "stat"
    _replace(images / "im1.png", seed=7)
    capsys.readouterr()
    assert main(["generate", "--verify", "--out", str(out), "--images", str(images)]) == 1
    assert "1 image(s) changed since computed: im1.png" in capsys.readouterr().out
    assert _generate(images, out) == 0
    assert "recomputing 1 image(s) changed" in capsys.readouterr().err
    after = read_store(out)
    fresh = tmp_path / "fresh.zarr"
    assert _generate(images, fresh) == 0
    reference = read_store(fresh)
    np.testing.assert_array_equal(after["maps"], reference["maps"])
    assert not np.array_equal(after["maps"][1], before["maps"][1])
    np.testing.assert_array_equal(after["maps"][2:], before["maps"][2:])    # other chunks kept
    assert main(["generate", "--verify", "--out", str(out), "--images", str(images)]) == 0


def test_unchanged_resume_is_byte_identical(images, tmp_path):
    out = tmp_path / "s.zarr"
    assert _generate(images, out) == 0
    snapshot = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert _generate(images, out) == 0
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot


def test_deleted_chunk_is_found_and_recomputed(images, tmp_path, capsys):
    out = tmp_path / "s.zarr"
    assert _generate(images, out) == 0
    done = read_store(out)["maps"]
    os.remove(out / "maps" / "c" / "1" / "0" / "0")
    capsys.readouterr()
    assert main(["generate", "--verify", "--out", str(out)]) == 1
    assert "1 chunk(s) marked done have no maps: [1]" in capsys.readouterr().out
    assert _generate(images, out) == 0
    np.testing.assert_array_equal(read_store(out)["maps"], done)
    assert main(["generate", "--verify", "--out", str(out), "--images", str(images)]) == 0
    assert "OK" in capsys.readouterr().out


def test_sha256_fingerprint_sees_a_change_stat_cannot(images, tmp_path, capsys):
    out = tmp_path / "s.zarr"
    assert _generate(images, out, "--fingerprint", "sha256") == 0
    path = images / "im2.png"
    st = os.stat(path)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF                     # same size, then the same mtime
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    capsys.readouterr()
    assert main(["generate", "--verify", "--out", str(out), "--images", str(images)]) == 1
    assert "im2.png" in capsys.readouterr().out
    assert _generate(images, out) == 2            # the store keeps its kind: asking another is an error
    _one_line_error(capsys, "records sha256 fingerprints")


def test_store_made_before_fingerprints_is_resumed_with_a_warning(images, tmp_path, capsys):
    out = tmp_path / "s.zarr"
    assert _generate(images, out) == 0
    shutil.rmtree(out / "fingerprint")
    meta = json.loads((out / "zarr.json").read_text())
    del meta["attributes"]["fastcam"]["fingerprint"]
    (out / "zarr.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="made before fastcam recorded image fingerprints"):
        summary = fastcam.generate(images, out, "gradcam", size=SIZE, batch_size=2, workers=0,
                                   progress=False, verbose=False)
    assert summary.skipped == 4 and summary.pending == 0
    capsys.readouterr()
    assert main(["generate", "--verify", "--out", str(out), "--images", str(images)]) == 0
    assert "cannot be detected" in capsys.readouterr().out
