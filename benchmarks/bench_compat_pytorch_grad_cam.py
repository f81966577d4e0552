"""The same pytorch-grad-cam call through pytorch-grad-cam and through
fastcam.compat.pytorch_grad_cam (only the import differs), on CPU:

- GradCAM, batch 8, ResNet-50 (random init), 224 px — target ≥ 2× faster;
- ScoreCAM, batch 1, ResNet-18, 224 px, ``cam.batch_size = 32`` on both — the
  floor is the K masked forwards alone at the same chunk size (copies prepared
  in advance); target within 1.1× of the floor and faster than pytorch-grad-cam.
"""
import pytest
import torch
import torchvision

import fastcam.compat.pytorch_grad_cam as fc
from fastcam.compat.pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from _scorecam_floor import k_masked_forwards, resnet18_case
from conftest import SMOKE

pgc = pytest.importorskip("pytorch_grad_cam")

GC_ARCH = "resnet18" if SMOKE else "resnet50"
GC_BATCH, GC_SIZE = (2, 64) if SMOKE else (8, 224)
SC_SIZE = 64 if SMOKE else 224
CHUNK = 32
ROUNDS = dict(rounds=1, iterations=1, warmup_rounds=0) if SMOKE else dict(rounds=5, iterations=1, warmup_rounds=1)
SC_ROUNDS = dict(rounds=1, iterations=1, warmup_rounds=0) if SMOKE else dict(rounds=3, iterations=1, warmup_rounds=1)


def _run_theirs(benchmark, cam, args, rounds):
    try:
        return benchmark.pedantic(cam, args=args, **rounds)
    finally:
        cam.activations_and_grads.release()


# -- GradCAM -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def gradcam_setup():
    torch.manual_seed(0)
    model = getattr(torchvision.models, GC_ARCH)().eval()
    x = torch.randn(GC_BATCH, 3, GC_SIZE, GC_SIZE)
    with torch.no_grad():
        classes = model(x).argmax(1).tolist()
    return model, x, classes


def _gc_group():
    return f"compat gradcam {GC_ARCH} B{GC_BATCH} {GC_SIZE}px"


def test_gradcam_pytorch_grad_cam(benchmark, gradcam_setup):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget as Theirs

    model, x, classes = gradcam_setup
    benchmark.group = _gc_group()
    benchmark.extra_info["baseline"] = True
    cam = pgc.GradCAM(model=model, target_layers=[model.layer4[-1]])
    maps = _run_theirs(benchmark, cam, (x, [Theirs(c) for c in classes]), ROUNDS)
    assert maps.shape == (GC_BATCH, GC_SIZE, GC_SIZE)


def test_gradcam_fastcam_compat(benchmark, gradcam_setup):
    model, x, classes = gradcam_setup
    benchmark.group = _gc_group()
    benchmark.extra_info["note"] = "target <= 0.5x"
    cam = fc.GradCAM(model=model, target_layers=[model.layer4[-1]])
    maps = benchmark.pedantic(cam, args=(x, [ClassifierOutputTarget(c) for c in classes]), **ROUNDS)
    assert maps.shape == (GC_BATCH, GC_SIZE, GC_SIZE)


# -- ScoreCAM ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def scorecam_setup():
    return resnet18_case(SC_SIZE, "layer4.1")


def _sc_group():
    return f"compat scorecam resnet18 B1 {SC_SIZE}px batch_size {CHUNK}"


def test_scorecam_floor_k_masked_forwards(benchmark, scorecam_setup):
    model, x, target, A = scorecam_setup
    floor = k_masked_forwards(model, x, A, target, CHUNK)
    benchmark.group = _sc_group()
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(floor, **SC_ROUNDS)


def test_scorecam_fastcam_compat(benchmark, scorecam_setup):
    model, x, target, _ = scorecam_setup
    cam = fc.ScoreCAM(model=model, target_layers=[model.layer4[-1]])
    cam.batch_size = CHUNK
    benchmark.group = _sc_group()
    benchmark.extra_info["note"] = "target <= 1.1x"
    maps = benchmark.pedantic(cam, args=(x, [ClassifierOutputTarget(target)]), **SC_ROUNDS)
    assert maps.shape == (1, SC_SIZE, SC_SIZE)


def test_scorecam_pytorch_grad_cam(benchmark, scorecam_setup):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget as Theirs

    model, x, target, _ = scorecam_setup
    cam = pgc.ScoreCAM(model=model, target_layers=[model.layer4[-1]])
    cam.batch_size = CHUNK
    benchmark.group = _sc_group()
    maps = _run_theirs(benchmark, cam, (x, [Theirs(target)]), SC_ROUNDS)
    assert maps.shape == (1, SC_SIZE, SC_SIZE)
