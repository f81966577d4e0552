"""``--executor ray``: a local Ray (``ray.init(num_cpus=2)``) with 2 actors gives
the store of one local single-process run."""
import os

import pytest
import torch

import fastcam
from _generate_helpers import BATCH, SIZE, assert_same_store, make_images

ray = pytest.importorskip("ray", reason="the Ray executor's test needs ray (fastcam[ray])")
pytestmark = pytest.mark.skipif(
    os.environ.get("FASTCAM_TEST_RAY") != "1",
    reason="Ray starts a cluster and four worker processes (40-80 s on a 2-core machine, beyond the "
           "suite's budget): FASTCAM_TEST_RAY=1 runs it")

KW = dict(size=SIZE, batch_size=BATCH, workers=0, progress=False, verbose=False)


def test_ray_executor_gives_the_local_store(tmp_path, monkeypatch):
    images = tmp_path / "images"
    make_images(images)
    for p in sorted(images.rglob("*.*"))[12:]:          # 12 files, 3 chunks
        p.unlink()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fastcam.generate(images, tmp_path / "local.zarr", "gradcam", **KW)
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    try:
        summary = fastcam.generate(images, tmp_path / "ray.zarr", "gradcam", executor="ray", ray_workers=2, **KW)
        assert summary.pending == 0 and summary.world_size == 2
        assert ray.is_initialized()          # a Ray the caller started is left running
    finally:
        ray.shutdown()
    assert_same_store(tmp_path / "local.zarr", tmp_path / "ray.zarr")
    # a rerun resumes from the store, not from Ray's state: nothing to compute
    again = fastcam.generate(images, tmp_path / "ray.zarr", "gradcam", executor="ray", **KW)
    assert again.computed == 0 and again.skipped == summary.n_images


# -- failures: an actor killed mid-run, the driver killed and the run started again --------
def _many_images(folder):
    """48 files (12 chunks): enough that a run is still going after its first commit."""
    make_images(folder)
    for p in sorted(folder.rglob("*.*")):
        if p.suffix != ".txt":
            (folder / "copy").mkdir(exist_ok=True)
            (folder / "copy" / p.name).write_bytes(p.read_bytes())


def _committed(store) -> int:
    status = store / "status" / "c"
    return len(list(status.iterdir())) if status.is_dir() else 0


def _processes(marker: bytes) -> list[int]:
    """The pids whose command line holds ``marker`` (Ray titles its actor processes
    ``ray::_Actor...``)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if marker in f.read():
                        pids.append(int(d))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def images_and_reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ray-many")
    _many_images(d / "images")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fastcam.generate(d / "images", d / "local.zarr", "gradcam", **KW)
    finally:
        torch.set_num_threads(threads)
    return d / "images", d / "local.zarr"


def test_an_actor_killed_mid_run_is_replaced(images_and_reference, tmp_path, monkeypatch):
    import signal
    import threading
    import time

    images, local = images_and_reference
    store = tmp_path / "ray.zarr"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    killed: list[int] = []
    stop = threading.Event()

    def kill_one_after_the_first_commit():
        while not stop.is_set():
            if _committed(store) >= 1:
                pids = _processes(b"ray::_Actor")
                if pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                    return
            time.sleep(0.002)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    killer = threading.Thread(target=kill_one_after_the_first_commit, daemon=True)
    killer.start()
    try:
        summary = fastcam.generate(images, store, "gradcam", executor="ray", ray_workers=2, **KW)
    finally:
        stop.set()
        killer.join()
        ray.shutdown()
    assert killed, "no actor was running after the first commit"
    assert summary.pending == 0
    assert_same_store(local, store)


def test_the_driver_killed_then_run_again_gives_the_local_store(images_and_reference, tmp_path, monkeypatch):
    import shutil
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    from _generate_helpers import env

    images, local = images_and_reference
    store = tmp_path / "ray.zarr"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray_dir = tempfile.mkdtemp(prefix="fcray", dir="/tmp")      # short: Ray's socket paths
    code = (f"import ray, fastcam; ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, "
            f"_temp_dir={ray_dir!r}); fastcam.generate({str(images)!r}, {str(store)!r}, 'gradcam', "
            f"executor='ray', ray_workers=2, size={KW['size']}, batch_size={KW['batch_size']}, workers=0, "
            "progress=False, verbose=False)")
    root = str(os.path.dirname(os.path.dirname(fastcam.__file__)))
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={**env(), "RAY_AUTH_MODE": "disabled",
                                 "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")})
    try:
        deadline = time.monotonic() + 300
        while _committed(store) < 1:
            assert proc.poll() is None and time.monotonic() < deadline, "the driver committed nothing"
            time.sleep(0.002)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        for pid in _processes(ray_dir.encode()):          # the killed driver's Ray, wherever it runs
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(ray_dir, ignore_errors=True)
    before = _committed(store)
    assert 1 <= before < 12, before
    summary = fastcam.generate(images, store, "gradcam", executor="ray", ray_workers=2, **KW)   # again: resumes
    assert summary.skipped >= before and summary.computed < summary.n_images and summary.pending == 0
    assert_same_store(local, store)
