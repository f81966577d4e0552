"""Score-CAM on CPU, batch 1, torchvision ResNet-18 (random init), all in the
pytorch-grad-cam numerics mode: fastcam vs pytorch-grad-cam vs TorchCAM, and the
floor no exact implementation can beat — the model's K masked forwards at the
same chunk size (here on copies prepared in advance, so building them is free)."""
import pytest
import torch
import torch.nn.functional as F

import fastcam

from _scorecam_floor import k_masked_forwards, resnet18_case
from conftest import SMOKE

SIZE = 64 if SMOKE else 224
CHUNK = 32


@pytest.fixture(scope="module")
def setup():
    return resnet18_case(SIZE, "layer4")


def _group():
    return f"scorecam resnet18 B1 {SIZE}px chunk {CHUNK}"


def test_floor_k_masked_forwards(benchmark, setup):
    model, x, target, A = setup
    floor = k_masked_forwards(model, x, A, target, CHUNK)
    benchmark.group = _group()
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(floor, rounds=3, iterations=1, warmup_rounds=1)


def test_fastcam(benchmark, setup):
    model, x, target, _ = setup
    cam = fastcam.ScoreCAM(model, "layer4", mode="pytorch-grad-cam", batch_size=CHUNK)
    benchmark.group = _group()
    benchmark.pedantic(cam, args=(x, [target]), rounds=3, iterations=1, warmup_rounds=1)


def test_pytorch_grad_cam(benchmark, setup):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x, target, _ = setup
    cam = pgc.ScoreCAM(model, [model.layer4])
    cam.batch_size = CHUNK
    benchmark.group = _group()
    try:
        benchmark.pedantic(cam, args=(x, [ClassifierOutputTarget(target)]), rounds=3,
                           iterations=1, warmup_rounds=1)
    finally:
        cam.activations_and_grads.release()


def test_torchcam(benchmark, setup):
    pytest.importorskip("torchcam")
    from torchcam.methods import ScoreCAM

    model, x, target, _ = setup
    extractor = ScoreCAM(model, target_layer="layer4", batch_size=CHUNK)

    def run():
        with torch.inference_mode():
            scores = model(x)
            low = extractor(target, scores)[0]
        return F.interpolate(low[:, None], size=(SIZE, SIZE), mode="bilinear")[:, 0]

    benchmark.group = _group()
    benchmark.extra_info["note"] = "TorchCAM's own numerics (softmax probs, bilinear)"
    try:
        benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    finally:
        extractor.remove_hooks()
