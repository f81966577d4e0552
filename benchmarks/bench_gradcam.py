"""Grad-CAM end to end on CPU, batch 8: fastcam vs the floor (the model's own
forward + backward to the target layer), pytorch-grad-cam and TorchCAM."""
import pytest
import torch
import torch.nn.functional as F
import torchvision

import fastcam

from conftest import SMOKE

ARCHS = ["resnet18", "resnet50"]
BATCH, SIZE = (2, 64) if SMOKE else (8, 224)


@pytest.fixture(scope="module", params=ARCHS)
def setup(request):
    torch.manual_seed(0)
    model = getattr(torchvision.models, request.param)().eval()
    x = torch.randn(BATCH, 3, SIZE, SIZE)
    with torch.no_grad():
        targets = model(x).argmax(1)
    return request.param, model, x, targets


def test_floor_forward_backward_to_layer(benchmark, setup):
    arch, model, x, targets = setup
    captured = {}
    handle = model.layer4.register_forward_hook(lambda m, i, o: captured.__setitem__("A", o))

    def floor():
        logits = model(x)
        score = logits.gather(1, targets[:, None]).sum()
        return torch.autograd.grad(score, captured["A"])

    benchmark.group = f"gradcam {arch} B{BATCH}"
    benchmark.extra_info["baseline"] = True
    try:
        benchmark(floor)
    finally:
        handle.remove()


def test_fastcam_gradcam(benchmark, setup):
    arch, model, x, targets = setup
    cam = fastcam.GradCAM(model, "layer4")
    benchmark.group = f"gradcam {arch} B{BATCH}"
    maps = benchmark(cam, x, targets)
    assert maps.shape == (BATCH, SIZE, SIZE)


def test_pytorch_grad_cam(benchmark, setup):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    arch, model, x, targets = setup
    cam = pgc.GradCAM(model, [model.layer4])
    tg = [ClassifierOutputTarget(int(t)) for t in targets]
    benchmark.group = f"gradcam {arch} B{BATCH}"
    try:
        benchmark(cam, x, tg)
    finally:
        cam.activations_and_grads.release()


def test_torchcam(benchmark, setup):
    pytest.importorskip("torchcam")
    from torchcam.methods import GradCAM

    arch, model, x, targets = setup
    extractor = GradCAM(model, target_layer="layer4")
    cls = targets.tolist()

    def run():
        scores = model(x)
        low = extractor(cls, scores)[0]            # (B, h, w), normalised, low resolution
        return F.interpolate(low[:, None], size=(SIZE, SIZE), mode="bilinear")[:, 0]

    benchmark.group = f"gradcam {arch} B{BATCH}"
    benchmark.extra_info["note"] = "incl. bilinear upsampling to the input size"
    try:
        benchmark(run)
    finally:
        extractor.remove_hooks()
