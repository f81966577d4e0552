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
