"""`fastcam generate` on real ImageNet validation images (``../shared/data/imagenet-val``,
1,000 JPEGs of 227 x 227; skipped, saying why, where that folder is absent), at
224 px with the bundled EfficientNet-Lite0, Grad-CAM and LIFT-CAM, fp32 and bf16
(bf16 where the CPU runs it natively). A group's rows back to back; the floor and
``local`` three rounds each (their median; FASTCAM_BENCH_ROUNDS), the others one:

* ``floor``: a bare eager loop: the same uint8 decoding in the same number of
  DataLoader workers, the same explainer, no store (the baseline);
* ``local``: ``fastcam.generate`` into a new store (listing, model load, store
  creation, decoding, compute, compression, the per-chunk tables);
* ``cli``: one ``python -m fastcam generate`` process (its start and imports
  included), which sets glibc's malloc for itself (:mod:`fastcam.allocator`);
  ``cli_default_malloc``: the same with ``FASTCAM_MALLOC=default`` (glibc's defaults);
* ``shard2``: two ``--shard i/2`` processes at once into one store (each one
  intra-op thread; wall time of the pair);
* ``ray2``: ``--executor ray`` with 2 actors on a local Ray (``ray.init(num_cpus=2)``,
  started once for the module and not timed: its start is 20-80 s here), on the
  shared images; skipped without ray (``fastcam[ray]``) and in the smoke run.

The floor and ``local`` run in the benchmark's process, whose malloc is set as
the command sets its own (see ``_malloc_as_the_command_sets_it``): with glibc's
defaults, how fast a pass runs depends on what ran in the process before (a
bf16 run left later fp32 passes 1.5x faster, the same maps), so rows measured
at different moments of one process were not comparable.

Targets (issue "Whole datasets where they live"): ``local`` >= 0.95 of the floor
on the shared images and on the same images re-encoded at 500 x 375 (the
``x500`` groups; a typical ImageNet size). ``test_decode_per_image``: uint8
decoding against fastcam's float decoding per image (target >= 2x).
``test_folder_webdataset_parquet_give_identical_stores``: the folder, WebDataset
and Parquet forms of the images give identical stores.

FASTCAM_BENCH_N overrides the number of images (default 1,000; smoke: 8 at 64 px).
"""
import io
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import fastcam
from conftest import SMOKE
from fastcam.data import load_image

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-val"
SIZE = 64 if SMOKE else 224
N = 8 if SMOKE else int(os.environ.get("FASTCAM_BENCH_N", "1000"))
BATCH = 4 if SMOKE else 32
WORKERS = 0 if SMOKE else 1
#: rounds of the floor and ``local`` rows (the median is reported): this shared 2-core
#: machine's speed drifts by a quarter between runs
ROUNDS = 1 if SMOKE else int(os.environ.get("FASTCAM_BENCH_ROUNDS", "3"))
METHODS = ("gradcam", "liftcam")
_FLOOR: dict = {}


def _native_bf16() -> bool:
    from fastcam.engine import check_precision

    try:
        check_precision("bf16", torch.device("cpu"))
    except ValueError:
        return False
    return True


PRECISIONS = ("fp32", "bf16") if _native_bf16() else ("fp32",)


@pytest.fixture(scope="module")
def shared() -> list:
    if not (SHARED / "images").is_dir():
        pytest.skip(f"{SHARED} is absent (the shared ImageNet-val subset)")
    return sorted((SHARED / "images").glob("*.JPEG"))[:N]


@pytest.fixture(scope="module")
def x500(shared, tmp_path_factory) -> list:
    """The same images re-encoded at 500 x 375 (JPEG quality 90)."""
    folder = tmp_path_factory.mktemp("x500")
    out = []
    for p in shared:
        with Image.open(p) as im:
            q = folder / (p.stem + ".jpg")
            im.convert("RGB").resize((500, 375), Image.BILINEAR).save(q, quality=90)
        out.append(q)
    return out


def _sets(shared, x500):
    return {"shared": shared, "x500": x500}


def _floor(paths, method, precision) -> float:
    """images/s of the bare loop (decode in workers, explain, nothing stored)."""
    from fastcam.generation.decode import decode_uint8, to_unit_float

    model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
    cls = fastcam.METHODS[method]
    opts = {} if precision == "fp32" else {"precision": precision}

    class Files(torch.utils.data.Dataset):
        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            return decode_uint8(Path(paths[i]).read_bytes(), SIZE).image

    # warm, at the loop's batch shapes: oneDNN builds its primitives per input shape on
    # first use (seconds in bf16), which would otherwise land on whichever row runs first
    warm = cls(model, ["_head_act"], normalize=model.normalization, **opts)
    for b in sorted({BATCH, len(paths) % BATCH} - {0}):
        warm(torch.rand(b, 3, SIZE, SIZE))
    t0 = time.perf_counter()
    cam = cls(model, ["_head_act"], normalize=model.normalization, **opts)
    loader = torch.utils.data.DataLoader(Files(), batch_size=BATCH, num_workers=WORKERS)
    for x in loader:
        cam(to_unit_float(x))
    return len(paths) / (time.perf_counter() - t0)


def _listing(paths, tmp_path) -> Path:
    listing = tmp_path / "images.txt"
    listing.write_text("\n".join(str(p) for p in paths))
    return listing


def _command(listing, out, method, precision) -> list:
    """``python -m fastcam generate`` with the rows' arguments."""
    return [sys.executable, "-m", "fastcam", "generate", "--images", str(listing), "--out", str(out),
            "--method", method, "--size", str(SIZE), "--batch-size", str(BATCH), "--workers", str(WORKERS),
            "--precision", precision, "--no-progress", "--max-failed", "100%"]


def _shard_pair(listing, out, method, precision) -> float:
    cmd = _command(listing, out, method, precision) + ["--steal"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd + ["--shard", f"{i}/2"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    errs = [p.communicate()[1] for p in procs]
    failed = [f"shard {i}/2 exited {p.returncode}:\n{err}" for i, (p, err) in enumerate(zip(procs, errs))
              if p.returncode != 0]
    if failed:      # whole: pytest's assertion message would cut the traceback
        sys.stderr.write("\n".join(failed))
        pytest.fail(f"{len(failed)} of the --shard x2 processes failed (their stderr is above)")
    return len(listing.read_text().splitlines()) / (time.perf_counter() - t0)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray for the ``ray2`` rows, started on first use, shut down after the module."""
    started = []

    def start():
        if not started:
            ray = pytest.importorskip("ray", reason="the ray2 rows need ray (fastcam[ray])")
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
            started.append(ray)
    yield start
    for ray in started:
        ray.shutdown()


@pytest.fixture(scope="module", autouse=True)
def _malloc_as_the_command_sets_it():
    """The floor and ``local`` run in this process, the other rows in processes of
    their own, which set glibc's malloc (:mod:`fastcam.allocator`): this one is
    set the same way, so that no row gains from it over the floor (not in the smoke
    run: it cannot be undone, and the smoke run shares its process with every module)."""
    if not SMOKE:
        from fastcam.allocator import tune_malloc

        tune_malloc()


def _cli(listing, out, method, precision, **env) -> float:
    """images/s of one ``python -m fastcam generate`` process (its start included)."""
    t0 = time.perf_counter()
    proc = subprocess.run(_command(listing, out, method, precision), env={**os.environ, **env},
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        pytest.fail(f"fastcam generate exited {proc.returncode} (its stderr is above)")
    return len(listing.read_text().splitlines()) / (time.perf_counter() - t0)


# the kind varies fastest: a group's rows run back to back
@pytest.mark.parametrize("kind", ["floor", "local", "cli", "cli_default_malloc", "shard2", "ray2"])
@pytest.mark.parametrize("images", ["shared", "x500"])
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("method", METHODS)
def test_generate_vs_floor(benchmark, shared, x500, tmp_path, local_ray, method, precision, images, kind):
    if images == "x500" and (method != "gradcam" or precision != "fp32"):
        pytest.skip("the 500 x 375 rows: Grad-CAM fp32 only (decoding is what differs)")
    if kind.startswith("cli") and (images == "x500" or SMOKE):
        pytest.skip("the command's rows on the shared images only, not in the smoke run")
    if kind == "shard2" and (images == "x500" or SMOKE):
        pytest.skip("--shard x2 on the shared images only, not in the smoke run (two processes start: "
                    "tests/generation covers them)")
    if kind == "ray2" and (images == "x500" or SMOKE):
        pytest.skip("--executor ray x2: on the shared images only, not in the smoke run")
    if kind == "ray2":
        local_ray()
    paths = _sets(shared, x500)[images]
    key = (method, precision, images)
    benchmark.group = f"generate {method} {precision} {images} {SIZE}px N{len(paths)} B{BATCH}"
    rates: list = []
    listing = _listing(paths, tmp_path)

    def out(name):      # a new store each round
        return tmp_path / f"{name}{len(rates)}.zarr"

    def run():
        if kind == "floor":
            rates.append(_floor(paths, method, precision))
        elif kind in ("local", "ray2"):
            extra = {"executor": "ray", "ray_workers": 2} if kind == "ray2" else {}
            t0 = time.perf_counter()
            s = fastcam.generate(listing, out(kind), method, size=SIZE, batch_size=BATCH, workers=WORKERS,
                                 precision=precision, progress=False, verbose=False, **extra)
            rates.append(s.n_images / (time.perf_counter() - t0))
        elif kind == "cli":
            rates.append(_cli(listing, out("cli"), method, precision))
        elif kind == "cli_default_malloc":
            rates.append(_cli(listing, out("cli"), method, precision, FASTCAM_MALLOC="default"))
        else:
            rates.append(_shard_pair(listing, out("shard"), method, precision))

    benchmark.extra_info["baseline"] = kind == "floor"
    rounds = ROUNDS if kind in ("floor", "local") else 1
    benchmark.pedantic(run, rounds=rounds, iterations=1)
    rate = float(np.median(rates))
    if kind == "floor":
        _FLOOR[key] = rate
    ratio = f" = {rate / _FLOOR[key]:.2f} of the floor" if key in _FLOOR and kind != "floor" else ""
    benchmark.extra_info["note"] = f"{rate:7.2f} images/s{ratio}" + (f" (median of {rounds})" if rounds > 1 else "")


@pytest.mark.parametrize("decoder", ["float_today", "uint8"])
@pytest.mark.parametrize("images", ["shared", "x500"])
def test_decode_per_image(benchmark, shared, x500, images, decoder):
    from fastcam.generation.decode import decode_uint8

    paths = _sets(shared, x500)[images][: min(200, N)]
    benchmark.group = f"decode per image {images} {SIZE}px N{len(paths)}"
    benchmark.extra_info["baseline"] = decoder == "float_today"

    def run():         # both read the file (the float decoder takes a path)
        for p in paths:
            if decoder == "uint8":
                decode_uint8(Path(p).read_bytes(), SIZE)
            else:
                load_image(p, SIZE)

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:     # None under --benchmark-disable
        per_image = benchmark.stats.stats.median / len(paths) * 1e3
        benchmark.extra_info["note"] = f"{per_image:.2f} ms per image (median of 5)"


def test_folder_webdataset_parquet_give_identical_stores(shared, tmp_path):
    """Not timed: the three forms of the images give the same maps, status and targets."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fastcam.generation import read_store

    paths = shared[: min(N, 64)]
    folder = tmp_path / "folder"
    folder.mkdir()
    for p in paths:
        (folder / p.name).write_bytes(p.read_bytes())
    with tarfile.open(tmp_path / "val-0000.tar", "w") as tar:
        for p in paths:
            data = p.read_bytes()
            info = tarfile.TarInfo(p.name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    pq.write_table(pa.Table.from_pylist([{"image": p.read_bytes(), "id": p.name} for p in paths]),
                   tmp_path / "val.parquet")
    kw = dict(size=SIZE, batch_size=BATCH, workers=WORKERS, progress=False, verbose=False)
    stores = {}
    for name, source, extra in (("folder", folder, {}), ("tar", str(tmp_path / "val-0000.tar"), {}),
                                ("parquet", tmp_path / "val.parquet", {"id_column": "id"})):
        fastcam.generate(source, tmp_path / f"{name}.zarr", "gradcam", **kw, **extra)
        stores[name] = read_store(tmp_path / f"{name}.zarr")
    for name in ("tar", "parquet"):
        for key in ("maps", "predicted", "probability", "target", "status"):
            np.testing.assert_array_equal(stores[name][key], stores["folder"][key], err_msg=f"{name} {key}")
