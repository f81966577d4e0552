"""Opti-CAM, 100 iterations, batch 4, CPU: fastcam vs a plain eager
implementation shaped like the official code (parameters requiring grad,
torch.optim.Adam, unfused CAM algebra, NCHW), and the floor: 100 × the model's
own forward + backward to the input at that batch size."""
import pytest
import torch
import torch.nn.functional as F
import torchvision

import fastcam

from conftest import SMOKE

B, SIZE, ITERS = (1, 64, 2) if SMOKE else (4, 224, 100)
NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _models():
    return {"resnet50": (torchvision.models.resnet50, "layer4"),
            "efficientnet_lite0": (fastcam.models.efficientnet_lite0, "_head_act")}


@pytest.fixture(scope="module", params=list(_models()))
def setup(request):
    torch.manual_seed(0)
    ctor, layer = _models()[request.param]
    model = ctor().eval()
    x = torch.rand(B, 3, SIZE, SIZE)
    with torch.no_grad():
        targets = model(x).argmax(1)
    return request.param, model, layer, x, targets


def _group(arch):
    return f"opticam {arch} B{B} {ITERS} iters"


def test_floor(benchmark, setup):
    arch, model, layer, x, targets = setup
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in NORM)

    def floor():
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            for _ in range(ITERS):
                xi = x.clone().requires_grad_(True)
                score = model((xi - mean) / std)[torch.arange(B), targets].sum()
                torch.autograd.grad(score, xi)
        finally:
            for p in model.parameters():
                p.requires_grad_(True)

    benchmark.group = _group(arch)
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(floor, rounds=1, iterations=1)


def test_fastcam(benchmark, setup):
    arch, model, layer, x, targets = setup
    cam = fastcam.OptiCAM(model, layer, normalize=NORM, max_iter=ITERS, stop=None)
    benchmark.group = _group(arch)
    benchmark.pedantic(cam, args=(x, targets), rounds=1, iterations=1)


def test_eager_official_shape(benchmark, setup):
    arch, model, layer, x, targets = setup
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in NORM)
    module = model.get_submodule(layer)

    def run():
        store = {}
        h = module.register_forward_hook(lambda m, i, o: store.__setitem__("A", o.detach()))
        with torch.no_grad():
            model((x - mean) / std)
        h.remove()
        A = torch.relu(store["A"])
        u = torch.ones(A.shape[:2], requires_grad=True)
        opt = torch.optim.Adam([u], lr=0.1)
        for _ in range(ITERS):
            opt.zero_grad()
            s = (torch.softmax(u, 1)[:, :, None, None] * A).sum(1, keepdim=True)
            s = F.interpolate(s, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
            lo = s.amin(dim=(2, 3), keepdim=True)
            mask = (s - lo) / (s.amax(dim=(2, 3), keepdim=True) - lo)
            loss = -model((x * mask - mean) / std)[torch.arange(B), targets].sum()
            loss.backward()
            opt.step()
        return mask

    benchmark.group = _group(arch)
    benchmark.pedantic(run, rounds=1, iterations=1)
