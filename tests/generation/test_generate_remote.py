"""``fastcam generate`` where the data lives: a local S3 server (moto's server mode,
started here on 127.0.0.1 at a free port) holding the inputs and the store,
WebDataset tar shards and a Parquet table (local and on the server), bad inputs
recorded as failures, and credentials that never leak. Every store is compared
with one local single-process run of the same images."""
import io
import multiprocessing
import os
import shutil
import signal
import socket
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import fastcam
from _generate_helpers import BATCH, SIZE, assert_same_store, make_images
from fastcam.apps.cli import main
from fastcam.generation import GenerateError, read_store

pytest.importorskip("moto.server", reason="the S3 tests need moto[server] (the test extra)")
pytest.importorskip("s3fs", reason="the S3 tests need s3fs (fastcam[remote])")
pq = pytest.importorskip("pyarrow.parquet", reason="the table tests need pyarrow (fastcam[remote])")
import pyarrow as pa  # noqa: E402

KW = dict(size=SIZE, batch_size=BATCH, workers=0, progress=False, verbose=False)
SECRET = "Sup3r-s3cret-Valu3"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def s3():
    """(storage options, s3fs file system, endpoint) of a moto server on a free local port."""
    from moto.server import ThreadedMotoServer
    import s3fs

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    options = {"key": "AKIAFASTCAMTEST", "secret": SECRET,
               "client_kwargs": {"endpoint_url": endpoint, "region_name": "us-east-1"}}
    fs = s3fs.S3FileSystem(**options)
    fs.call_s3("create_bucket", Bucket="bkt")
    yield options, fs, endpoint
    server.stop()


@pytest.fixture(scope="module")
def images(tmp_path_factory, s3) -> Path:
    folder = tmp_path_factory.mktemp("remote") / "images"
    make_images(folder)
    keep = {"photo00.png", "photo03.jpg", "photo06.png", "photo09.jpg", "sub/photo01.jpg", "sub/photo04.png",
            "corrupt.jpg", "rgba.png"}                # 8 images, 2 chunks: every request goes to the server
    for p in list(folder.rglob("*")):
        if p.is_file() and p.relative_to(folder).as_posix() not in keep:
            p.unlink()
    _, fs, _ = s3
    fs.put(str(folder) + "/", "bkt/images/", recursive=True)
    return folder


@pytest.fixture(scope="module")
def reference(images, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("remote") / "reference.zarr"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fastcam.generate(images, out, "gradcam", **KW)
    finally:
        torch.set_num_threads(threads)
    return out


def _download(fs, key: str, to: Path) -> Path:
    fs.get(f"bkt/{key}/", str(to) + "/", recursive=True)
    return to


def _etags(fs, key: str) -> dict:
    fs.invalidate_cache()
    return {k: v["ETag"] for k, v in fs.find(f"bkt/{key}", detail=True).items()}


def test_inputs_and_store_on_s3_then_a_rerun_skips_everything(images, reference, s3, tmp_path):
    options, fs, _ = s3
    summary = fastcam.generate("s3://bkt/images", "s3://bkt/maps.zarr", "gradcam", storage_options=options, **KW)
    assert (summary.done, summary.failed, summary.pending) == (7, 1, 0)
    assert_same_store(reference, _download(fs, "maps.zarr", tmp_path / "copy.zarr"), ignore_attrs=("images",),
                      same_sources=False)
    table = pq.read_table(str(tmp_path / "copy.zarr" / "images")).to_pandas()
    assert table.uri.str.startswith("s3://bkt/images/").all() and table.fingerprint.str.startswith("etag:").all()
    before = _etags(fs, "maps.zarr")
    again = fastcam.generate("s3://bkt/images", "s3://bkt/maps.zarr", "gradcam", storage_options=options, **KW)
    assert again.skipped == 8 and again.computed == 0
    assert _etags(fs, "maps.zarr") == before


def _generate_in_child(images, out, kw):
    torch.set_num_threads(1)
    fastcam.generate(images, out, "gradcam", **kw)


def test_kill_9_mid_chunk_on_s3_then_resume(images, reference, s3, tmp_path):
    # the inputs are a local copy listed in a text file whose 6th path is a FIFO: the
    # run blocks in chunk 1 after committing chunk 0 to S3, and is killed there
    options, fs, endpoint = s3
    folder = tmp_path / "images"
    shutil.copytree(images, folder)
    paths = read_store(reference)["path"].tolist()
    blocker = folder / paths[5]
    blocker.unlink()
    os.mkfifo(blocker)
    listing = folder / "list.txt"
    listing.write_text("\n".join(paths) + "\n")
    out = "s3://bkt/killed.zarr"
    proc = multiprocessing.get_context("fork").Process(
        target=_generate_in_child, args=(listing, out, {**KW, "storage_options": options}))
    proc.start()             # forked from this process, which has loaded everything already
    try:
        deadline = time.monotonic() + 120
        while not fs.exists("bkt/killed.zarr/status/c/0"):
            fs.invalidate_cache()
            assert proc.is_alive() and time.monotonic() < deadline, "the run did not reach chunk 1"
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    assert proc.exitcode == -signal.SIGKILL
    fs.invalidate_cache()
    partial = read_store(out, storage_options=options)
    assert (partial["status"][:4] != 0).all() and (partial["status"][4:] == 0).all()
    blocker.unlink()
    shutil.copy2(images / paths[5], blocker)
    summary = fastcam.generate(listing, out, "gradcam", storage_options=options, **KW)
    assert summary.skipped == 4 and summary.pending == 0
    assert_same_store(reference, _download(fs, "killed.zarr", tmp_path / "copy.zarr"), ignore_attrs=("images",),
                      same_sources=False)


def _flat(rel: str) -> str:
    return rel.replace("/", "__")


def _make_shards(images: Path, folder: Path, paths: list, corrupt: bool = False) -> list:
    """Two WebDataset shards of the images (member KEY.EXT, the path flattened)."""
    folder.mkdir(parents=True, exist_ok=True)
    half = (len(paths) + 1) // 2
    shards = []
    for s, part in enumerate((paths[:half], paths[half:])):
        shard = folder / f"val-{s:04d}.tar"
        with tarfile.open(shard, "w") as tar:
            for p in part:
                data = (images / p).read_bytes()
                info = tarfile.TarInfo(_flat(p))
                info.size, info.mtime = len(data), 1_700_000_000
                tar.addfile(info, io.BytesIO(data))
            cls = tarfile.TarInfo(_flat(part[0]).rsplit(".", 1)[0] + ".cls")   # WebDataset's label member
            cls.size = 3
            tar.addfile(cls, io.BytesIO(b"281"))
            if corrupt:
                bad = b"\x89PNG\r\n\x1a\n but then nothing"
                info = tarfile.TarInfo("zz_corrupt.png")
                info.size = len(bad)
                tar.addfile(info, io.BytesIO(bad))
        shards.append(shard)
    return shards


def _make_table(images: Path, path: Path, paths: list, bad_row: bool = False) -> Path:
    rows = [{"image": {"bytes": (images / p).read_bytes(), "path": p}, "id": p, "label": 1} for p in paths]
    if bad_row:
        rows.append({"image": {"bytes": b"these bytes are not an image", "path": "x"}, "id": "zz_text", "label": 2})
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=7)
    return path


def _by_id(store, key=lambda i: i) -> dict:
    s = read_store(store) if not isinstance(store, dict) else store
    return {key(str(i)): (m, st) for i, m, st in zip(s["path"], s["maps"], s["status"])}


def test_webdataset_and_parquet_local_and_on_s3_give_the_folders_maps(images, reference, s3, tmp_path):
    options, fs, _ = s3
    paths = read_store(reference)["path"].tolist()
    shards = _make_shards(images, tmp_path / "shards", paths)
    table = _make_table(images, tmp_path / "val.parquet", paths)
    for shard in shards:
        fs.put(str(shard), f"bkt/shards/{shard.name}")
    fs.put(str(table), "bkt/val.parquet")
    ref = _by_id(reference)
    unflatten = {_flat(p): p for p in paths}
    for spec, so in ((str(tmp_path / "shards" / "val-{0000..0001}.tar"), None),
                     ("s3://bkt/shards/val-{0000..0001}.tar", options)):
        out = tmp_path / f"tar{so is not None}.zarr"
        summary = fastcam.generate(spec, out, "gradcam", storage_options=so, **KW)
        assert summary.n_images == 8 and summary.failed == 1
        got = _by_id(out, key=lambda i: unflatten[i.split("/", 1)[1]])
        assert got.keys() == ref.keys()
        for k in ref:
            np.testing.assert_array_equal(got[k][0], ref[k][0], err_msg=k)
            assert got[k][1] == ref[k][1], k
    for spec, so in ((str(table), None), ("s3://bkt/val.parquet", options)):
        out = tmp_path / f"table{so is not None}.zarr"
        fastcam.generate(spec, out, "gradcam", storage_options=so, id_column="id", **KW)
        assert_same_store(reference, out, ignore_attrs=("images", "image_column"), same_sources=False)
    # the label column as the targets
    out = tmp_path / "labels.zarr"
    fastcam.generate(table, out, "gradcam", id_column="id", label_column="label", **KW)
    s = read_store(out)
    assert (s["target"][s["status"] == 1] == 1).all() and s["attrs"]["fastcam"]["target"]["file"] == "column label"


def test_bad_inputs_are_recorded_and_the_rest_completes(images, s3, tmp_path, capsys):
    options, fs, _ = s3
    paths = sorted(str(p.relative_to(images)) for p in images.rglob("photo0*"))
    shards = _make_shards(images, tmp_path / "shards", paths, corrupt=True)
    with tarfile.open(shards[1]) as tar:
        last = [m for m in tar.getmembers() if m.name.endswith((".png", ".jpg"))][-1]
    shards[1].write_bytes(shards[1].read_bytes()[: last.offset_data + last.size // 2])   # cut mid-member
    out = tmp_path / "tars.zarr"
    with pytest.warns(UserWarning, match="val-0001.tar: damaged after"):
        summary = fastcam.generate(str(tmp_path / "shards" / "val-{0000..0001}.tar"), out, "gradcam", **KW)
    s = read_store(out)
    errors = dict(zip(s["path"], s["error"]))
    status = dict(zip(s["path"], s["status"]))
    assert status["val-0000.tar/zz_corrupt.png"] == 2 and "UnidentifiedImageError" in errors["val-0000.tar/zz_corrupt.png"]
    # the member cut in the middle fails with the reason; the members before it are done
    truncated = [k for k, e in errors.items() if "truncated" in e]
    assert len(truncated) == 1 and truncated[0].startswith("val-0001.tar/")
    assert summary.pending == 0 and summary.failed == 2 and summary.done == summary.n_images - 2 >= 4
    # a table with a non-image row
    table = _make_table(images, tmp_path / "bad.parquet", paths, bad_row=True)
    out = tmp_path / "table.zarr"
    summary = fastcam.generate(table, out, "gradcam", id_column="id", **KW)
    s = read_store(out)
    assert (summary.done, summary.failed) == (6, 1)
    assert s["status"][-1] == 2 and "UnidentifiedImageError" in s["error"][-1]
    # a wrong column or an unreadable listing: a clear error before any work
    for kw, message in ((dict(image_column="img"), "--image-column 'img'"),
                        (dict(id_column="name"), "--id-column 'name'")):
        with pytest.raises(GenerateError, match=message):
            fastcam.generate(table, tmp_path / "never.zarr", "gradcam", **kw, **KW)
    with pytest.raises(GenerateError, match="no such folder or file|cannot list"):
        fastcam.generate("s3://bkt/no-such-folder/", tmp_path / "never.zarr", storage_options=options, **KW)
    assert not (tmp_path / "never.zarr").exists()
    # an unreachable URL: that image fails with the reason, the others complete
    listing = tmp_path / "urls.txt"
    listing.write_text("http://127.0.0.1:9/nothing-listens-here.png\n" + "\n".join(str(images / p) for p in paths))
    summary = fastcam.generate(listing, tmp_path / "urls.zarr", "gradcam", **KW)
    assert (summary.done, summary.failed) == (6, 1) and "nothing-listens-here" in summary.failures[0][0]


def test_credentials_never_leak(images, s3, tmp_path, capsys):
    options, fs, endpoint = s3
    host = endpoint.split("://", 1)[1]
    url = f"http://fastcam-user:{SECRET}@{host}/bkt/images"
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{url}/photo00.png\n{url}/photo03.jpg\n{url}/corrupt.jpg\n"
                       f"http://fastcam-user:{SECRET}@127.0.0.1:9/gone.png\n")
    storage = ["--storage-option", f"key={options['key']}", "--storage-option", f"secret={SECRET}",
               "--storage-option", f'client_kwargs={{"endpoint_url": "{endpoint}", "region_name": "us-east-1"}}']
    args = ["generate", "--images", str(listing), "--out", "s3://bkt/secret.zarr", "--size", str(SIZE),
            "--batch-size", str(BATCH), "--workers", "0", "--no-progress", *storage]
    assert main(args) == 1                          # two images failed
    captured = capsys.readouterr()
    store = _download(fs, "secret.zarr", tmp_path / "copy.zarr")
    s = read_store(store)
    status = {str(p).rsplit("/", 1)[1]: int(v) for p, v in zip(s["path"], s["status"])}
    assert status == {"corrupt.jpg": 2, "gone.png": 2, "photo00.png": 1, "photo03.jpg": 1}
    found = [p for p in store.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert found == []
    assert SECRET not in captured.out + captured.err and "fastcam-user" not in captured.out + captured.err
    # the same with an error before any work: the message names the store without the secret
    assert main(["generate", "--images", f"s3://fastcam-user:{SECRET}@nobucket/x/", "--out",
                 str(tmp_path / "n.zarr"), *args[5:]]) == 2
    err = capsys.readouterr().err
    assert SECRET not in err and "nobucket" in err
