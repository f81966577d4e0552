"""Shap-CAM on CPU, batch 1: fastcam vs a plain eager implementation (one
forward, then for each permutation the n+1 masked activations materialised and
run through the tail).

- VGG16 at features.29 (n = 196), 8 permutations: fastcam's linear-head path
  (fc6 accumulated player by player; only fc7 + fc8 run per coalition).
- ResNet-50 at layer3 (n = 196; tail = layer4 + pool + fc), 4 permutations:
  the general path (chunks of coalitions built on the fly)."""
import pytest
import torch
import torchvision

from fastcam.methods.shapcam import ShapCAM
from fastcam.network.split import split

from conftest import SMOKE

CASES = {  # arch, layer, permutations, input size
    "vgg16": ("vgg16", "features.29", 8, 224),
    "resnet50-layer3": ("resnet50", "layer3", 4, 224),
}
if SMOKE:
    CASES = {"vgg16": ("vgg16", "features.29", 1, 32), "resnet50-layer3": ("resnet50", "layer3", 1, 32)}


@pytest.fixture(scope="module", params=list(CASES))
def setup(request):
    torch.manual_seed(0)
    arch, layer, perms, size = CASES[request.param]
    model = getattr(torchvision.models, arch)().eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        target = int(model(x).argmax())
    return request.param, model, layer, perms, x, target


def eager(model, layer, perms, x, target, seed=0):
    prefix, tail = split(model, layer)
    with torch.inference_mode():
        A = prefix(x)
        _, K, h, w = A.shape
        n = h * w
        base = A.mean(dim=(2, 3)).view(1, K, 1, 1)
        gen = torch.Generator().manual_seed(seed)
        phi = torch.zeros(n)
        for _ in range(perms):
            pi = torch.randperm(n, generator=gen)
            masks = torch.zeros(n + 1, n, dtype=torch.bool)
            for t in range(1, n + 1):
                masks[t] = masks[t - 1]
                masks[t, pi[t - 1]] = True
            coalitions = torch.where(masks.view(n + 1, 1, h, w), A, base)   # (n+1, K, h, w)
            v = tail(coalitions).softmax(1)[:, target]
            phi[pi] += v[1:] - v[:-1]
    return phi / perms


def test_eager(benchmark, setup):
    name, model, layer, perms, x, target = setup
    benchmark.group = f"shapcam {name} {perms} perms"
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(eager, args=(model, layer, perms, x, target), rounds=1, iterations=1,
                       warmup_rounds=0)


def test_fastcam(benchmark, setup):
    name, model, layer, perms, x, target = setup
    cam = ShapCAM(model, layer, permutations=perms, seed=0, chunk_size=256, baseline="mean")
    cam(x, target)                                   # warm: split, head tables' weight layout
    benchmark.group = f"shapcam {name} {perms} perms"
    benchmark.pedantic(cam, args=(x, target), rounds=1, iterations=1)
    macs = cam.last.extra["macs_per_coalition"]
    benchmark.extra_info["note"] = (f"path {cam.last.extra['path']}"
                                    + (f", {macs / 1e6:.1f} M multiply-adds per coalition" if macs else ""))
    torch.testing.assert_close(cam.last.extra["phi"][0].flatten().float(),
                               eager(model, layer, perms, x, target), atol=1e-5, rtol=1e-3)


# The first call on a new explainer for VGG16's fc6 (4096 × 512·49 weights): before, every
# explainer laid the 411 MB weight out per pooling window by a strided whole-tensor copy
# (permute(2, 1, 0).contiguous()); now the layout is a row-local transpose, cached per weight
# across explainers. "before" reproduces the old copy on every new explainer.
FIRST = ("vgg16", "features.29", 1, 32 if SMOKE else 224)


@pytest.fixture(scope="module")
def vgg_first_call():
    torch.manual_seed(0)
    arch, layer, perms, size = FIRST
    model = getattr(torchvision.models, arch)().eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        target = int(model(x).argmax())
    return model, layer, perms, x, target


def _strided_layout(W, K, windows):
    old = W.view(W.shape[0], K, windows).permute(2, 1, 0).contiguous()   # the old (windows, K, O)
    return old.permute(2, 0, 1)                                          # viewed as (O, windows, K)


def _first_call(model, layer, perms, x, target):
    cam = ShapCAM(model, layer, permutations=perms, seed=0, chunk_size=256)
    return cam(x, target), cam


@pytest.mark.parametrize("variant", ["before (strided copy per explainer)",
                                     "after, cold cache (row-local layout)",
                                     "after, second explainer (cached layout)"])
def test_first_call_new_explainer(benchmark, vgg_first_call, variant, monkeypatch):
    from fastcam.perturbation import coalition_scores as cs

    model, layer, perms, x, target = vgg_first_call
    benchmark.group = f"shapcam vgg16 first call on a new explainer ({perms} perm)"
    reference, _ = _first_call(model, layer, perms, x, target)     # builds the split
    if variant.startswith("before"):
        benchmark.extra_info["baseline"] = True
        monkeypatch.setattr(cs, "_build_window_weights", _strided_layout)
    setup = (lambda: cs._window_cache.clear()) if not variant.endswith("(cached layout)") else None
    if setup is None:
        _first_call(model, layer, perms, x, target)                 # another explainer built it
    maps, cam = benchmark.pedantic(_first_call, args=(model, layer, perms, x, target),
                                   setup=setup, rounds=3, iterations=1)
    benchmark.extra_info["note"] = f"path {cam.last.extra['path']}"
    torch.testing.assert_close(maps, reference, atol=1e-5, rtol=1e-4)
    cs._window_cache.clear()
