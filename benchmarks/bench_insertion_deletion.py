"""Insertion + deletion AUC (RISE protocol, 224 steps) on 8 images, CPU,
torchvision ResNet-18 (random init): fastcam's streamed engine vs a plain eager
loop (RISE's shape: per image, per step, one forward of a batch of steps built
by indexing). pytorch-grad-cam and TorchCAM have no insertion/deletion metric;
their nearest equivalent (pytorch-grad-cam's ROAD / CamMultImageConfidenceChange)
measures a different quantity, so it is not timed here."""
import math

import pytest
import torch
import torchvision

import fastcam
from fastcam import metrics
from fastcam.metrics.insertion_deletion import rise_blur

from conftest import SMOKE

B, SIZE, STEPS, CHUNK = (2, 32, 8, 4) if SMOKE else (8, 224, 224, 64)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.rand(B, 3, SIZE, SIZE)
    maps = fastcam.explain(model, x, "gradcam")
    with torch.no_grad():
        cls = model(x).argmax(1)
    return model, x, maps, cls


def _eager(model, x, maps, cls):
    """Both curves, per image: all steps of one image materialised, then forwarded
    in chunks of CHUNK (the plain loop a user writes)."""
    Bn, C, H, W = x.shape
    per = math.ceil(H * W / STEPS)
    blurred = rise_blur(x)
    aucs = []
    with torch.inference_mode():
        for insertion in (True, False):
            for b in range(Bn):
                order = torch.sort(maps[b].flatten(), descending=True, stable=True).indices
                cur = (blurred[b] if insertion else x[b]).clone().view(C, -1)
                steps = []
                for t in range(STEPS + 1):
                    if t:
                        idx = order[(t - 1) * per:t * per]
                        cur[:, idx] = x[b].view(C, -1)[:, idx] if insertion else 0.0
                    steps.append(cur.view(C, H, W).clone())
                batch = torch.stack(steps)
                p = torch.cat([model(batch[i:i + CHUNK]).softmax(1)[:, cls[b]]
                               for i in range(0, len(batch), CHUNK)])
                aucs.append(metrics.auc(p[None]))
    return torch.cat(aucs)


def test_eager_loop(benchmark, setup):
    benchmark.group = f"insertion+deletion B{B} {STEPS} steps"
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(_eager, args=setup, rounds=1, iterations=1)


def test_fastcam(benchmark, setup):
    model, x, maps, cls = setup

    def run():
        ins = metrics.insertion_auc(model, x, maps, cls, steps=STEPS, batch_size=CHUNK)
        dele = metrics.deletion_auc(model, x, maps, cls, steps=STEPS, batch_size=CHUNK)
        return torch.cat([ins, dele])

    benchmark.group = f"insertion+deletion B{B} {STEPS} steps"
    got = benchmark.pedantic(run, rounds=1, iterations=1)
    torch.testing.assert_close(got, _eager(model, x, maps, cls), atol=1e-5, rtol=1e-4)
