"""Shared by the ``fastcam generate`` tests: the test images and the store
comparison (every store is compared with one local single-process run)."""
import os
from pathlib import Path

import numpy as np
from PIL import Image

from fastcam.data import load_photos
from fastcam.generation import read_store

SIZE, BATCH = 64, 4
ARRAYS = ("maps", "path", "predicted", "probability", "target", "error", "status")


def make_images(folder: Path) -> None:
    rng = np.random.default_rng(0)
    x, _ = load_photos(size=160)
    photos = (x.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    (folder / "sub" / "deeper").mkdir(parents=True)
    for i in range(20):
        p = photos[i % len(photos)]
        h, w = rng.integers(72, 160, size=2)
        top, left = rng.integers(0, 160 - h + 1), rng.integers(0, 160 - w + 1)
        crop = Image.fromarray(p[top:top + h, left:left + w])
        sub = ("", "sub/", "sub/deeper/")[i % 3]
        crop.save(folder / f"{sub}photo{i:02d}.{'jpg' if i % 2 else 'png'}")
    p = photos[0][:100, :120]
    Image.fromarray(p[..., 1]).save(folder / "gray.png")                         # L
    Image.fromarray(np.dstack([p, np.full(p.shape[:2], 90, np.uint8)])).save(folder / "rgba.png")
    Image.fromarray(p[..., 2].astype(np.uint16) * 257).save(folder / "sub/sixteen.png")  # I;16
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    data = (folder / "photo03.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.txt").write_text("not an image, not listed")


def store_files(store: Path) -> dict:
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def _table(path: Path, ignore=()):
    import pyarrow.parquet as pq

    from fastcam.generation.table import RUN_COLUMNS

    t = pq.read_table(path)
    return t.drop_columns([c for c in (*RUN_COLUMNS, *ignore) if c in t.column_names]), \
        t.schema.metadata[b"fastcam"]


def assert_same_store(a: Path, b: Path, ignore_attrs=(), same_sources: bool = True) -> None:
    """Equal arrays, attributes (less ``ignore_attrs``), chunk files and tables (less
    their timing and device columns, and unless ``same_sources``, the URIs and
    fingerprints: where the images were listed from and what that listing saw)."""
    A, B = read_store(a), read_store(b)
    for name in ARRAYS:
        np.testing.assert_array_equal(A[name], B[name], err_msg=name)   # NaNs compare equal
    meta_a = {k: v for k, v in A["attrs"]["fastcam"].items() if k not in ignore_attrs}
    meta_b = {k: v for k, v in B["attrs"]["fastcam"].items() if k not in ignore_attrs}
    assert meta_a == meta_b
    # byte for byte: every chunk and array's metadata (the group's zarr.json holds the attrs)
    fa, fb = store_files(a), store_files(b)
    fa.pop("zarr.json"), fb.pop("zarr.json")
    source_keys = ("manifest/uri/", "manifest/fingerprint/", "fingerprint/")
    if not same_sources:
        fa = {k: v for k, v in fa.items() if not k.startswith(source_keys)}
        fb = {k: v for k, v in fb.items() if not k.startswith(source_keys)}
    assert fa.keys() == fb.keys()
    tables = [k for k in fa if k.endswith(".parquet")]
    assert len(tables) == -(-len(A["status"]) // BATCH)
    skip = set(tables)
    assert [k for k in fa if k not in skip and fa[k] != fb[k]] == []
    for k in tables:
        ignore = () if same_sources else ("uri", "fingerprint")
        (ta, ma), (tb, mb) = _table(a / k, ignore), _table(b / k, ignore)
        assert ta.to_pandas().equals(tb.to_pandas()), k      # NaNs compare equal
        if not ignore_attrs:
            assert ma == mb


def env() -> dict:
    """A subprocess's environment: one thread (bitwise-equal stores need the same count)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
