"""ROADCombined (9 percentiles × MoRF/LeRF, noise 0.01) on 8 Grad-CAM maps, CPU,
torchvision ResNet-18 (random init), 224 px: pytorch-grad-cam (a SciPy sparse direct
solve per image and percentile, two forwards per percentile) vs the fastcam drop-in
(one batched multigrid-PCG imputation, 1 + 18 forwards), fastcam's native
``fastcam.metrics.road`` (the same computation with class-index targets), and the floor of
any exact implementation — the 1 + 18 model forwards alone, on inputs prepared in advance."""
import numpy as np
import pytest
import torch
import torchvision

import fastcam
from fastcam.compat.pytorch_grad_cam.metrics import ROADCombined
from fastcam.metrics import road

from conftest import SMOKE

BATCH, SIZE = (2, 48) if SMOKE else (8, 224)
PERCENTILES = [10, 20, 30, 40, 50, 60, 70, 80, 90]
GROUP = f"road combined resnet18 B{BATCH} {SIZE}px"


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(BATCH, 3, SIZE, SIZE)
    with torch.no_grad():
        classes = model(x).argmax(1).tolist()
    cams = fastcam.GradCAM(model, "layer4")(x, classes)
    cams = np.asarray(torch.as_tensor(cams).detach(), dtype=np.float32)
    return model, x, cams, classes


def _targets(classes):
    return [lambda out, c=c: out[c] for c in classes]


def test_floor_forwards(benchmark, setup):
    model, x, _, classes = setup
    copies = x.repeat(2 * len(PERCENTILES), 1, 1, 1)               # prepared once: imputation is free

    def floor():
        with torch.inference_mode():
            idx = torch.tensor(classes)
            base = model(x).gather(1, idx[:, None])
            return [model(copies[i:i + BATCH]).gather(1, idx[:, None]) - base
                    for i in range(0, len(copies), BATCH)]

    benchmark.group = GROUP
    benchmark.extra_info["note"] = "1 + 18 forwards, no imputation"
    benchmark.pedantic(floor, rounds=3, iterations=1, warmup_rounds=1)


def test_fastcam(benchmark, setup):
    model, x, cams, classes = setup
    metric = ROADCombined(PERCENTILES)
    benchmark.group = GROUP
    scores = benchmark.pedantic(metric, args=(x, cams, _targets(classes), model), rounds=3,
                                iterations=1, warmup_rounds=1)
    assert scores.shape == (BATCH,)


def test_fastcam_native(benchmark, setup):
    model, x, cams, classes = setup
    maps = torch.from_numpy(cams)

    def native():
        return road(model, x, maps, classes, percentiles=PERCENTILES, score="logit", batch_size=BATCH)

    benchmark.group = GROUP
    benchmark.extra_info["note"] = "fastcam.metrics.road(order='combined')"
    scores = benchmark.pedantic(native, rounds=3, iterations=1, warmup_rounds=1)
    assert scores.shape == (BATCH,)


def test_pytorch_grad_cam(benchmark, setup):
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.metrics.road import ROADCombined as Reference
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x, cams, classes = setup
    metric = Reference(PERCENTILES)
    benchmark.group = GROUP
    benchmark.extra_info["baseline"] = True
    rounds = 3 if SMOKE else 1                                      # ~40 s a round at full size
    scores = benchmark.pedantic(metric, args=(x, cams, [ClassifierOutputTarget(c) for c in classes], model),
                                rounds=rounds, iterations=1)
    assert scores.shape == (BATCH,)
