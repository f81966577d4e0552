"""The chunk protocol and its local executors: prepare / run_chunks / finalize by
hand, ``--shard i/N`` processes (one killed and rerun; two on the same chunks at
once), failures that are never success, several targets per image, the
per-chunk table and the low-resolution maps read without fastcam, and the
preprocessing refused on resume. Every store is compared with one local
single-process run (one thread: CPU convolutions round differently with another
count)."""
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import fastcam
from _generate_helpers import BATCH, SIZE, assert_same_store, env, make_images
from fastcam.apps.cli import main
from fastcam.generation import GenerateConfig, GenerateError, finalize, prepare, read_store, run_chunks

ARGS = ["--size", str(SIZE), "--batch-size", str(BATCH), "--workers", "0", "--no-progress"]
KW = dict(size=SIZE, batch_size=BATCH, workers=0, progress=False, verbose=False)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("protocol") / "images"
    make_images(folder)
    return folder


@pytest.fixture(scope="module")
def reference(images, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("protocol") / "reference.zarr"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fastcam.generate(images, out, "gradcam", **KW)
    finally:
        torch.set_num_threads(threads)
    return out


def test_the_protocol_by_hand_in_any_order_with_duplicates(images, reference, tmp_path):
    out = tmp_path / "hand.zarr"
    config = GenerateConfig(size=SIZE, batch_size=BATCH)
    with pytest.raises(GenerateError, match="run prepare first"):
        run_chunks(tmp_path / "nothing.zarr", [0])
    prepared = prepare(images, out, config)
    assert prepared.pending == list(range(7)) and prepared.skipped == 0
    # the manifest is stored with the store: a worker needs nothing else
    s = read_store(out)
    assert s["attrs"]["fastcam"]["state"] == "ready" and "complete" not in s["attrs"]["fastcam"]
    first = run_chunks(out, [5, 1, 3], workers=0)
    assert (first.chunks, first.computed) == (3, 12)
    again = run_chunks(out, [3, 1], workers=0)          # done chunks are skipped
    assert again.chunks == 0
    assert prepare(images, out, config).pending == [0, 2, 4, 6]
    run_chunks(out, [6, 4, 2, 0], workers=1)
    summary = finalize(out)
    assert (summary.done, summary.failed, summary.pending) == (23, 2, 0)
    assert summary.reasons == {"OSError": 2}
    assert_same_store(reference, out)


def test_shards_one_killed_then_rerun(images, reference, tmp_path):
    out = tmp_path / "shards.zarr"
    # shard 0 of 2 never ran (killed before it started): the store is incomplete
    one = fastcam.generate(images, out, "gradcam", shard=(1, 2), **KW)
    assert one.computed == 12 and one.pending == 13
    status = read_store(out)["status"]
    assert (status[4:8] != 0).all() and (status[:4] == 0).all()
    # its own share is done: exit 0 (a SLURM array task succeeds); the store still lacks shard 0's
    assert main(["generate", "--images", str(images), "--out", str(out), *ARGS, "--shard", "1/2",
                 "--max-failed", "2"]) == 0
    assert main(["generate", "--images", str(images), "--out", str(out), *ARGS, "--max-failed", "2",
                 "--shard", "1/2", "--steal", "--verify"]) == 1      # pending images: --verify fails
    zero = fastcam.generate(images, out, "gradcam", shard=(0, 2), **KW)
    assert zero.computed == 13 and zero.pending == 0
    assert_same_store(reference, out)


def _generate_in_child(images, out, kw):
    torch.set_num_threads(1)
    fastcam.generate(images, out, "gradcam", **kw)


def test_two_processes_on_the_same_chunks_at_once(images, reference, tmp_path):
    # every chunk is computed by both (one is shard 0 of 1, the other steals the rest);
    # forked from this process, which has loaded everything already
    out = tmp_path / "twice.zarr"
    fork = multiprocessing.get_context("fork")
    procs = [fork.Process(target=_generate_in_child, args=(images, out, {**KW, **extra}))
             for extra in ({"shard": (0, 1)}, {"shard": (0, 2), "steal": True})]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    assert_same_store(reference, out)


def test_opening_leaves_a_live_writers_temporary_files(images, reference, tmp_path):
    # a shard that opens the store late must not delete another's write in flight (its
    # rename into place would fail: the --shard x2 benchmark crash); a dead writer's old
    # temporary file is removed
    out = tmp_path / "copy.zarr"
    shutil.copytree(reference, out)
    live = out / "status" / f"c.{'a' * 32}.partial"
    dead = out / "maps" / f"c.{'b' * 32}.partial"
    for f in (live, dead):
        f.write_bytes(b"half a chunk")
    old = time.time() - 3600
    os.utime(dead, (old, old))
    assert prepare(images, out, GenerateConfig(size=SIZE, batch_size=BATCH)).pending == []
    assert live.exists() and not dead.exists()


def test_opening_waits_for_a_group_being_created(images, reference, tmp_path, monkeypatch):
    # another process has made the folder and is writing the group's metadata (Zarr writes
    # a temporary file, then renames it): this one waits, never calls it "not a fastcam store"
    import fastcam.generation.store as store_module

    out = tmp_path / "racing.zarr"
    out.mkdir()
    temporary = out / f"zarr.json.{'c' * 32}.partial"
    temporary.write_bytes(b"{")
    waits = []

    def wait(seconds):          # while this one waits, that process dies: this one creates it
        waits.append(seconds)
        temporary.unlink(missing_ok=True)

    monkeypatch.setattr(store_module.time, "sleep", wait)
    assert prepare(images, out, GenerateConfig(size=SIZE, batch_size=BATCH)).pending == list(range(7))
    assert waits                # it waited, rather than finding the folder gone


@pytest.mark.parametrize("other", ["same run", "another run"])
def test_creating_a_group_another_process_just_created(images, reference, tmp_path, monkeypatch, other):
    # both looked, saw nothing and create: Zarr's create then finds the other's group
    # (ContainsGroupError, the --shard x2 benchmark's second crash); this one looks again
    # and checks the other's metadata as any existing store's
    import zarr

    from fastcam.generation.store import SaliencyStore

    out = tmp_path / "both.zarr"
    real = SaliencyStore._create.__func__
    created = []

    def the_other_was_first(cls, location, meta, *args, **kwargs):
        if not created:         # the other process creates the store, then this one's create fails
            created.append(location)
            real(cls, location, meta if other == "same run" else {**meta, "method": "liftcam"}, *args, **kwargs)
            raise zarr.errors.ContainsGroupError(f"A group exists in store {location}")
        return real(cls, location, meta, *args, **kwargs)

    monkeypatch.setattr(SaliencyStore, "_create", classmethod(the_other_was_first))
    config = GenerateConfig(size=SIZE, batch_size=BATCH)
    if other == "another run":
        with pytest.raises(GenerateError, match="made by a different run.*method"):
            prepare(images, out, config)
        return
    assert prepare(images, out, config).pending == list(range(7)) and created
    monkeypatch.undo()
    run_chunks(out, range(7), workers=0)
    finalize(out)
    assert_same_store(reference, out)


def test_failures_are_never_success(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"x{i}.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (bad / "empty.png").write_bytes(b"")
    out = str(tmp_path / "bad.zarr")
    assert main(["generate", "--images", str(bad), "--out", out, *ARGS]) == 1
    captured = capsys.readouterr()
    assert "4 failed" in captured.out and "failed by reason:" in captured.out
    assert "4 image(s) failed, more than --max-failed 0" in captured.err
    assert main(["generate", "--images", str(bad), "--out", out, *ARGS, "--max-failed", "3"]) == 1
    assert main(["generate", "--images", str(bad), "--out", out, *ARGS, "--max-failed", "100%"]) == 0
    assert main(["generate", "--images", str(bad), "--out", out, *ARGS, "--max-failed", "4"]) == 0
    capsys.readouterr()
    assert main(["generate", "--images", str(bad), "--out", out, *ARGS, "--max-failed", "ten"]) == 2
    assert "--max-failed 'ten'" in capsys.readouterr().err


def _decoded(path, mode="crop") -> torch.Tensor:
    from fastcam.generation.decode import decode_uint8

    return decode_uint8(Path(path).read_bytes(), SIZE, mode).image.float() / 255


def test_topk_and_eval_labels_csv_give_a_row_per_target(images, tmp_path):
    four = sorted(str(p.relative_to(images)) for p in images.rglob("photo0[0-3].*"))
    listing = tmp_path / "four.txt"
    listing.write_text("\n".join(str(images / p) for p in four) + "\n")
    top = fastcam.generate(listing, tmp_path / "top.zarr", "gradcam", target="topk:2", **KW)
    assert top.n_images == 4 * 2
    s = read_store(tmp_path / "top.zarr")
    model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
    x = torch.stack([_decoded(images / p) for p in four])
    logits = model(x * 2 - 1)          # the bundled model's normalisation: mean = std = 0.5
    order = logits.argsort(1, descending=True)[:, :2].reshape(-1).numpy()
    assert list(s["path"]) == [str(images / p) for p in four for _ in range(2)]
    np.testing.assert_array_equal(s["target"], order)
    np.testing.assert_array_equal(s["predicted"], np.repeat(order[::2], 2))
    assert main(["generate", "--verify", "--out", str(tmp_path / "top.zarr"), "--images", str(listing)]) == 0
    verify = ["generate", "--verify", "--out", str(tmp_path / "top.zarr"), "--images", str(listing), "--target"]
    assert main([*verify, "topk:2"]) == 0                       # the rows it expands to are the store's
    assert main([*verify, "topk:3"]) == 1 and main([*verify, "predicted"]) == 1
    ref = fastcam.explain(model, x.repeat_interleave(2, 0), "gradcam", "_head_act",
                          targets=torch.as_tensor(order), normalize=model.normalization).numpy()
    np.testing.assert_allclose(s["maps"].astype(np.float32), ref, atol=2e-3)
    # eval's labels CSV: an image repeated for several classes (by file name, as eval names them)
    csv = tmp_path / "labels.csv"
    rows = [(Path(p).name, c) for p, c in zip(four, (1, 2, 3, 4))] + [(Path(four[0]).name, 7)]
    csv.write_text("image,class,name\n" + "".join(f"{n},{c},x\n" for n, c in rows))
    lab = fastcam.generate(listing, tmp_path / "lab.zarr", "gradcam", target=csv, **KW)
    s = read_store(tmp_path / "lab.zarr")
    assert lab.n_images == 5 and list(s["target"]) == [1, 7, 2, 3, 4]
    ref = fastcam.explain(model, x[[0, 0, 1, 2, 3]], "gradcam", "_head_act",
                          targets=torch.tensor([1, 7, 2, 3, 4]), normalize=model.normalization).numpy()
    np.testing.assert_allclose(s["maps"].astype(np.float32), ref, atol=2e-3)
    verify = ["generate", "--verify", "--out", str(tmp_path / "lab.zarr"), "--images", str(listing), "--target"]
    assert main([*verify, str(csv)]) == 0
    other = tmp_path / "other.csv"                                # one image's second class dropped
    other.write_text("image,class,name\n" + "".join(f"{n},{c},x\n" for n, c in rows[:4]))
    assert main([*verify, str(other)]) == 1
    with pytest.raises(GenerateError, match="topk:K needs an integer"):
        fastcam.generate(listing, tmp_path / "x.zarr", target="topk:0", **KW)


READER = r"""
import json, sys
import numpy as np, pyarrow.parquet as pq, zarr
store = sys.argv[1]
table = pq.read_table(store + "/images").to_pandas().sort_values("row")
g = zarr.open_group(store, mode="r")
maps = g["maps"][:]
meta = json.loads(pq.read_schema(store + "/images/part-00000.parquet").metadata[b"fastcam"])
done = table[table.status == "done"]
# the map's hottest pixel, back in the original image's pixels through the crop box
out = []
for r in done.itertuples():
    m = maps[r.row].astype(np.float32)
    i, j = np.unravel_index(np.argmax(m), m.shape)
    S = m.shape[0]
    x = r.crop_x0 + (j + 0.5) * (r.crop_x1 - r.crop_x0) / S
    y = r.crop_y0 + (i + 0.5) * (r.crop_y1 - r.crop_y0) / S
    out.append([r.image_id, float(x), float(y), int(r.width), int(r.height)])
print(json.dumps({"fastcam_imported": "fastcam" in sys.modules, "n": len(table), "columns": list(table.columns),
                  "failed": int((table.status == "failed").sum()), "meta_method": meta["method"],
                  "low_res": list(g["low_res"].shape), "points": out}))
"""


def test_table_and_maps_read_without_fastcam(images, tmp_path):
    from fastcam.generation.decode import crop_box

    out = tmp_path / "table.zarr"
    fastcam.generate(images, out, "gradcam", save=("low-res",), **KW)
    proc = subprocess.run([sys.executable, "-c", READER, str(out)], capture_output=True, text=True,
                          env={**env(), "PYTHONPATH": ""}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert not got["fastcam_imported"] and got["n"] == 25 and got["failed"] == 2
    assert got["meta_method"] == "gradcam" and got["low_res"][0] == 25
    from fastcam.generation.table import COLUMNS

    assert got["columns"] == list(COLUMNS)
    for image_id, x, y, w, h in got["points"]:
        assert 0 <= x <= w and 0 <= y <= h, image_id
    # the box by hand for a 120 x 100 (w x h) image at 64: shorter side to round(64*256/224) = 73,
    # longer to int(73*120/100) = 87, crop offsets round(4.5) = 4 rows and round(11.5) = 12 columns
    np.testing.assert_allclose(crop_box(100, 120, SIZE, "crop"),
                               (12 * 120 / 87, 4 * 100 / 73, 76 * 120 / 87, 68 * 100 / 73))
    assert crop_box(100, 120, SIZE, "resize") == (0, 0, 120, 100)
    # the low-resolution maps are the maps before upsampling and scaling
    s = read_store(out)
    done = s["status"] == 1
    lo = torch.as_tensor(s["low_res"][done])
    up = torch.nn.functional.interpolate(lo[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    lo_min, lo_max = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    scaled = (up - lo_min) / (lo_max - lo_min + 1e-7)
    np.testing.assert_allclose(s["maps"][done].astype(np.float32), scaled.numpy(), atol=3e-3)
    meta = s["attrs"]["fastcam"]
    for key in ("weights_sha256", "torch_version", "device", "backend", "preprocess", "map_definition",
                "seed_policy", "fastcam_version"):
        assert meta.get(key), key
    assert len(meta["weights_sha256"]) == 64 and meta["save"] == ["maps", "low_res"]


def test_preprocessing_is_recorded_and_another_refused(images, reference, tmp_path):
    meta = read_store(reference)["attrs"]["fastcam"]
    assert meta["preprocess"]["geometry"] == "crop"
    with pytest.raises(GenerateError, match="preprocess: store has"):
        fastcam.generate(images, reference, "gradcam", preprocess="resize", **KW)
    four = [str(p) for p in sorted(images.glob("photo0[0-3].*"))]
    out = tmp_path / "resize.zarr"
    fastcam.generate(four, out, "gradcam", preprocess="resize", **KW)
    model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
    x = torch.stack([_decoded(p, "resize") for p in four])
    ref = fastcam.explain(model, x, "gradcam", "_head_act", normalize=model.normalization).numpy()
    np.testing.assert_allclose(read_store(out)["maps"].astype(np.float32), ref, atol=2e-3)
    import pyarrow.parquet as pq

    t = pq.read_table(out / "images").to_pandas()
    assert (t.crop_x0 == 0).all() and (t.crop_x1 == t.width).all() and (t.crop_y1 == t.height).all()
