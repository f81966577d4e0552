"""LIFT-CAM on CPU, batch 8, torchvision ResNet-50 (layer4) and VGG16 (features.29),
random init.

Two groups per architecture:

* ``liftcam-deeplift``: the DeepLIFT part alone on the same tail -- fastcam (one
  forward of the rows [A; 0] + one backward with the Rescale multipliers) vs
  Captum's ``DeepLift`` one image at a time, as the official LIFT-CAM code calls it
  (baseline), and Captum's ``DeepLift`` on the whole batch (for reference: not what
  the official code does).
* ``liftcam``: the whole explanation -- the official code's approach (per image: a
  full forward with a hook on the target layer, then Captum's DeepLift on the tail,
  the map from φ; written here from Captum's public API; baseline) vs fastcam's
  LiftCAM and fastcam's Grad-CAM. The LiftCAM row's note gives its ratio to Grad-CAM.

Targets: DeepLIFT part >= 5x the baseline; LIFT-CAM >= 1.2x faster than the
official approach and <= 1.3x fastcam's Grad-CAM time.
"""
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import fastcam
from fastcam.methods.liftcam import LiftCAM
from fastcam.network.deeplift import DeepLift
from fastcam.network.split import split

from conftest import SMOKE

ARCHS = {"resnet50": "layer4", "vgg16": "features.29"}
BATCH, SIZE = (2, 64) if SMOKE else (8, 224)
_MEDIANS: dict = {}     # (row, arch) -> median seconds
_MAPS: dict = {}        # arch -> the official approach's maps


def _captum_tail(arch: str, model: nn.Module) -> nn.Module:
    """The network after the target layer as one module, as the official code builds
    it for Captum (fresh, not-in-place ReLUs: Captum hooks each nonlinearity)."""
    if arch == "resnet50":
        return nn.Sequential(model.avgpool, nn.Flatten(1), model.fc).eval()
    cls = model.classifier
    return nn.Sequential(model.features[30], model.avgpool, nn.Flatten(1), cls[0], nn.ReLU(),
                         cls[2], cls[3], nn.ReLU(), cls[5], cls[6]).eval()


def _rounds(arch: str) -> int:
    return 5 if arch == "vgg16" else 7


@pytest.fixture(scope="module", params=list(ARCHS))
def setup(request):
    arch = request.param
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)().eval()
    layer = ARCHS[arch]
    x = torch.randn(BATCH, 3, SIZE, SIZE)
    prefix, tail = split(model, layer)
    with torch.no_grad():
        A = prefix(x)                      # also runs the split's one-time check
        targets = tail(A).argmax(1)
    captum_tail = _captum_tail(arch, model)
    with torch.no_grad():
        torch.testing.assert_close(captum_tail(A), tail(A))
    return arch, model, layer, x, targets, A, tail, captum_tail


def _captum():
    return pytest.importorskip("captum.attr")


# -- the DeepLIFT part alone --------------------------------------------------------------

def test_captum_deeplift_per_image(benchmark, setup):
    captum = _captum()
    arch, model, layer, x, targets, A, tail, captum_tail = setup
    dl = captum.DeepLift(captum_tail)
    zero = torch.zeros_like(A[:1])

    def run():
        return torch.cat([dl.attribute(A[i:i + 1], baselines=zero, target=int(targets[i]))
                          for i in range(A.shape[0])])

    benchmark.group = f"liftcam-deeplift {arch} B{BATCH}"
    benchmark.extra_info["baseline"] = True
    benchmark.extra_info["note"] = "official code's way: one image per call"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark(run)


def test_captum_deeplift_batched(benchmark, setup):
    captum = _captum()
    arch, model, layer, x, targets, A, tail, captum_tail = setup
    dl = captum.DeepLift(captum_tail)
    zero = torch.zeros_like(A)
    benchmark.group = f"liftcam-deeplift {arch} B{BATCH}"
    benchmark.extra_info["note"] = "Captum on the whole batch (not the official code)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark(lambda: dl.attribute(A, baselines=zero, target=targets))


def test_fastcam_deeplift(benchmark, setup):
    arch, model, layer, x, targets, A, tail, captum_tail = setup
    engine = DeepLift(tail)
    idx = targets[:, None]

    def run():
        p = engine.forward(A)
        return p.attribute(p.output.gather(1, idx)[:, 0], p.ref_output.gather(1, idx)[:, 0]).contributions

    benchmark.group = f"liftcam-deeplift {arch} B{BATCH}"
    benchmark.extra_info["note"] = "tail fwd of [A; 0] + bwd"
    got = benchmark(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = _captum().DeepLift(captum_tail).attribute(A, baselines=torch.zeros_like(A),
                                                             target=targets).detach()
    torch.testing.assert_close(got, expected, rtol=1e-3,
                               atol=1e-4 * float(expected.abs().max()))


# -- the whole explanation ----------------------------------------------------------------

def _minmax(maps):
    lo = maps.amin(dim=(-2, -1), keepdim=True)
    rng = maps.amax(dim=(-2, -1), keepdim=True) - lo
    return torch.where(rng > 0, (maps - lo) / torch.where(rng > 0, rng, 1), 0)


def test_official_approach(benchmark, setup):
    captum = _captum()
    arch, model, layer, x, targets, A, tail, captum_tail = setup
    module = model.get_submodule(layer)
    captured = {}
    handle = module.register_forward_hook(lambda m, i, o: captured.__setitem__("A", o))

    def run():
        maps = []
        for i in range(x.shape[0]):
            with torch.no_grad():
                model(x[i:i + 1])
            a = captured["A"]
            dl = captum.DeepLift(captum_tail)
            attr = dl.attribute(a, baselines=torch.zeros_like(a), target=int(targets[i]))
            phi = attr.detach().sum(dim=(2, 3))
            cam = torch.relu((phi[:, :, None, None] * a).sum(1, keepdim=True))
            cam = F.interpolate(cam, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
            maps.append(_minmax(cam[:, 0]))
        return torch.cat(maps)

    benchmark.group = f"liftcam {arch} B{BATCH}"
    benchmark.extra_info["baseline"] = True
    benchmark.extra_info["note"] = "per image: forward + Captum DeepLift on the tail"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _MAPS[arch] = benchmark.pedantic(
                run, rounds=_rounds(arch), iterations=1, warmup_rounds=1)
    finally:
        handle.remove()


def test_fastcam_gradcam(benchmark, setup):
    arch, model, layer, x, targets, A, tail, captum_tail = setup
    cam = fastcam.GradCAM(model, layer)
    benchmark.group = f"liftcam {arch} B{BATCH}"
    benchmark.pedantic(cam, args=(x, targets), rounds=_rounds(arch), iterations=1, warmup_rounds=1)
    if benchmark.stats is not None:
        _MEDIANS[("gradcam", arch)] = benchmark.stats.stats.median


def test_fastcam_liftcam(benchmark, setup):
    arch, model, layer, x, targets, A, tail, captum_tail = setup
    cam = LiftCAM(model, layer)
    benchmark.group = f"liftcam {arch} B{BATCH}"
    maps = benchmark.pedantic(cam, args=(x, targets), rounds=_rounds(arch), iterations=1,
                              warmup_rounds=1)
    assert maps.shape == (BATCH, SIZE, SIZE)
    official = _MAPS.get(arch)
    if official is not None:     # the same maps as the official approach
        torch.testing.assert_close(maps, official, atol=1e-4, rtol=1e-3)
    gradcam = _MEDIANS.get(("gradcam", arch))
    if benchmark.stats is not None and gradcam:
        ratio = benchmark.stats.stats.median / gradcam
        benchmark.extra_info["note"] = f"{ratio:.3f}x fastcam Grad-CAM's median"
