"""The inference graph (batch norm folded, frozen parameters, channels-last weights,
optionally compiled with freezing) against today's fastcam (the same engine with
``inference_graph=False``: the user's model as given), eager PyTorch, the fastest
peer and a hand-frozen TorchScript model (``torch.jit.freeze(torch.jit.trace(...))``
with ``optimize_for_inference``: the strongest baseline a competent engineer
would write for forward-only work).

ResNet-50 and MobileNetV2 (torchvision, random weights, eval mode) at batch 8,
224 px unless the group says otherwise (the K-pass methods at batch 1, Score-CAM
on ResNet-50 at 112 px: 2,048 masked passes). Opti-CAM: ResNet-18, batch 2,
160 px, 20 iterations, a fresh explainer per call, against a competent eager
Opti-CAM (frozen parameters, ``torch.optim.Adam`` over u only, the map in eager
torch). Shap-CAM fresh/warm: VGG16 ``features.29``, 8 permutations, batch 1
(no batch norm: runs as given). The shared MobileNetV2 weights on 64 shared
ImageNet images (skipped without ``../shared``)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

import fastcam
from fastcam.engine import Engine, cpu_supports
from fastcam.metrics import average_drop, deletion_auc, insertion_auc

from conftest import SMOKE

B, SIZE = (2, 64) if SMOKE else (8, 224)
ROUNDS = 1 if SMOKE else 5
PRECISIONS = ["fp32"] + (["bf16"] if cpu_supports(torch.bfloat16) and not SMOKE else [])
ARCHS = {"resnet50": (torchvision.models.resnet50, "layer4"),
         "mobilenet_v2": (torchvision.models.mobilenet_v2, "features.18")}
SHARED = Path(__file__).resolve().parents[2] / "shared"


def _model(arch: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return ARCHS[arch][0]().eval()


@pytest.fixture(scope="module", params=list(ARCHS))
def arch(request):
    return request.param


@pytest.fixture(scope="module")
def model(arch):
    return _model(arch)


@pytest.fixture(scope="module")
def x():
    return torch.rand(B, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


def _autocast(precision: str):
    dtype = {"fp32": None, "bf16": torch.bfloat16}[precision]
    return torch.autocast("cpu", dtype=dtype) if dtype else torch.autocast("cpu", enabled=False)


def _torchscript(model, x):
    if SMOKE:
        pytest.skip("tracing and freezing take seconds; not a smoke test")
    with torch.no_grad():
        traced = torch.jit.trace(model, x.contiguous(memory_format=torch.channels_last))
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced))


def _bench(benchmark, fn, *, group, baseline=False, note="", rounds=ROUNDS):
    benchmark.group = group
    if baseline:
        benchmark.extra_info["baseline"] = True
    if note:
        benchmark.extra_info["note"] = note
    return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)


# -- a no-grad forward ---------------------------------------------------------------------

FORWARD = ["eager NCHW", "eager channels-last input (today's fastcam)", "inference graph",
           "inference graph, compile=True", "TorchScript frozen"]


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("variant", FORWARD)
def test_forward(benchmark, arch, model, x, variant, precision):
    group = f"no-grad forward {arch} B{B} {precision}"
    note = ""
    if variant == "eager NCHW":
        def fn():
            with torch.inference_mode(), _autocast(precision):
                return model(x)
    elif variant.startswith("TorchScript"):
        if precision != "fp32":
            pytest.skip("TorchScript freezing under autocast is not a supported combination")
        ts = _torchscript(model, x)
        xc = x.contiguous(memory_format=torch.channels_last)

        def fn():
            with torch.inference_mode():
                return ts(xc)
    else:
        engine = Engine(model, precision=precision,
                        inference_graph=variant.startswith("inference graph"),
                        compile=variant.endswith("compile=True"))
        if engine.compile:
            if SMOKE:
                pytest.skip("compiling is a minute; not a smoke test")
            t0 = time.perf_counter()
            engine.forward(x)
            note = f"compile {time.perf_counter() - t0:.1f} s (excluded)"
            torch.testing.assert_close(engine.forward(x), model(x), atol=2e-3 if precision == "fp32"
                                       else 0.5, rtol=0)

        def fn():
            return engine.forward(x)
    _bench(benchmark, fn, group=group, baseline=variant == "eager NCHW", note=note)


# -- Grad-CAM ---------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("variant", ["TorchCAM", "today's fastcam", "inference graph",
                                     "inference graph, fresh explainer"])
def test_gradcam(benchmark, arch, model, x, variant, precision):
    layer = ARCHS[arch][1]
    targets = list(range(B))
    group = f"gradcam {arch} B{B} {precision}"
    if variant == "TorchCAM":
        torchcam = pytest.importorskip("torchcam.methods")
        if precision != "fp32":
            pytest.skip("TorchCAM has no precision option")
        peer = _model(arch)            # its hooks stay on its own copy of the model

        extractor = torchcam.GradCAM(peer, target_layer=layer)

        def fn():
            low = extractor(targets, peer(x))[0]
            return F.interpolate(low[:, None], size=(SIZE, SIZE), mode="bilinear")[:, 0]
        try:
            _bench(benchmark, fn, group=group, baseline=True, note="incl. upsampling")
        finally:
            extractor.remove_hooks()
        return
    if variant.endswith("fresh explainer"):
        def fn():
            return fastcam.GradCAM(model, layer, precision=precision)(x, targets)
    else:
        cam = fastcam.GradCAM(model, layer, precision=precision)
        cam.engine.inference_graph = variant != "today's fastcam"

        def fn():
            return cam(x, targets)
    _bench(benchmark, fn, group=group, baseline=precision != "fp32" and variant == "today's fastcam")


# -- the metrics: Average Drop + insertion/deletion on B images --------------------------------

@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("variant", ["today's fastcam", "inference graph", "TorchScript frozen"])
def test_metrics(benchmark, arch, model, x, variant, precision):
    maps = torch.rand(B, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    targets = list(range(B))
    steps = 4 if SMOKE else 8
    if variant.startswith("TorchScript"):
        if precision != "fp32":
            pytest.skip("TorchScript freezing under autocast is not a supported combination")
        net = Engine(_torchscript(model, x), inference_graph=False)
    else:
        net = Engine(model, precision=precision, inference_graph=variant == "inference graph")

    def fn():
        return (average_drop(net, x, maps, targets), insertion_auc(net, x, maps, targets, steps=steps),
                deletion_auc(net, x, maps, targets, steps=steps))
    _bench(benchmark, fn, group=f"AD + insertion/deletion ({steps} steps) {arch} B{B} {precision}",
           baseline=variant == "today's fastcam", rounds=2)


# -- the K-pass methods, batch 1 ------------------------------------------------------------

KPASS = {  # method -> {arch: (layer, size, options)}
    "scorecam": {"resnet50": ("layer4", 112, dict(batch_size=64)),
                 "mobilenet_v2": ("features.18", 224, dict(batch_size=64))},
    "shapcam": {"resnet50": ("layer3", 224, dict(permutations=2, seed=0, chunk_size=128)),
                "mobilenet_v2": ("features.13", 224, dict(permutations=4, seed=0, chunk_size=128))},
    "ablationcam": {"resnet50": ("layer3", 224, dict(batch_size=64)),
                    "mobilenet_v2": ("features.13", 224, dict(batch_size=64))},
}
if SMOKE:   # 32 px: few channels or few players
    KPASS = {m: {a: ((("layer1" if a == "resnet50" else "features.3") if m == "scorecam" else layer),
                     32, o) for a, (layer, _, o) in per.items()} for m, per in KPASS.items()}


@pytest.mark.parametrize("method", list(KPASS))
@pytest.mark.parametrize("variant", ["today's fastcam", "inference graph"])
def test_kpass(benchmark, arch, model, method, variant):
    layer, size, opts = KPASS[method][arch]
    xi = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(3))
    cam = fastcam.METHODS[method](model, layer, **opts)
    cam.engine.inference_graph = variant == "inference graph"
    _bench(benchmark, lambda: cam(xi, 1), group=f"{method} {arch} {layer} B1 {size}px",
           baseline=variant == "today's fastcam", rounds=1 if method == "scorecam" else 2)


# -- Opti-CAM ---------------------------------------------------------------------------------

OPTI_B, OPTI_SIZE, OPTI_ITERS = (1, 48, 2) if SMOKE else (2, 160, 20)


def _eager_opticam(model, layer, x, targets):
    """A competent eager Opti-CAM: frozen parameters, Adam over u only, the map in eager torch."""
    module = model.get_submodule(layer)
    store = {}
    h = module.register_forward_hook(lambda m, i, o: store.__setitem__("A", o.detach()))
    with torch.no_grad():
        model(x)
    h.remove()
    A = store["A"]
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        u = torch.rand(A.shape[:2], generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        opt = torch.optim.Adam([u], lr=0.1)
        rows = torch.arange(x.shape[0])
        for _ in range(OPTI_ITERS):
            opt.zero_grad()
            s = (torch.softmax(u, 1)[:, :, None, None] * A).sum(1, keepdim=True)
            s = F.interpolate(s, size=x.shape[-2:], mode="bilinear", align_corners=False)
            lo = s.amin(dim=(2, 3), keepdim=True)
            mask = (s - lo) / (s.amax(dim=(2, 3), keepdim=True) - lo + 1e-12)
            (-model(x * mask)[rows, targets].sum()).backward()
            opt.step()
        return mask
    finally:
        for p in params:
            p.requires_grad_(True)


@pytest.mark.parametrize("variant", ["competent eager", "today's fastcam", "inference graph"])
def test_opticam(benchmark, variant):
    model = torchvision.models.resnet18().eval()
    xo = torch.rand(OPTI_B, 3, OPTI_SIZE, OPTI_SIZE, generator=torch.Generator().manual_seed(4))
    targets = list(range(OPTI_B))
    group = f"opticam resnet18 B{OPTI_B} {OPTI_SIZE}px {OPTI_ITERS} iters fp32, fresh explainer"
    if variant == "competent eager":
        _bench(benchmark, lambda: _eager_opticam(model, "layer4", xo, targets), group=group,
               baseline=True, rounds=3)
        return

    def fn():
        cam = fastcam.OptiCAM(model, "layer4", max_iter=OPTI_ITERS, stop=None)
        cam.engine.inference_graph = variant == "inference graph"
        return cam(xo, targets)
    _bench(benchmark, fn, group=group, rounds=3)


# -- Shap-CAM: a fresh explainer against a warm one and an eager sampler --------------------

SHAP = ("features.29", 1, 32) if SMOKE else ("features.29", 8, 224)


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return torchvision.models.vgg16().eval()


@pytest.mark.parametrize("variant", ["eager sampler", "fresh explainer", "warm explainer"])
def test_shapcam_fresh(benchmark, vgg, variant):
    from bench_shapcam import eager
    layer, perms, size = SHAP
    xs = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(5))
    group = f"shapcam vgg16 {layer} {perms} perms B1 (fresh vs warm)"
    if variant == "eager sampler":
        _bench(benchmark, lambda: eager(vgg, layer, perms, xs, 1), group=group, baseline=True,
               rounds=2)
        return
    warm = fastcam.ShapCAM(vgg, layer, permutations=perms, seed=0, chunk_size=256, baseline="mean")
    warm(xs, 1)
    fn = (lambda: warm(xs, 1)) if variant.startswith("warm") else (
        lambda: fastcam.ShapCAM(vgg, layer, permutations=perms, seed=0, chunk_size=256,
                                baseline="mean")(xs, 1))
    _bench(benchmark, fn, group=group, rounds=2)


# -- the shared MobileNetV2 weights on 64 shared images --------------------------------------

@pytest.mark.parametrize("variant", ["today's fastcam", "inference graph"])
def test_shared_mobilenet_v2(benchmark, variant):
    weights = SHARED / "models" / "mobilenet_v2_coral.pt"
    images = SHARED / "data" / "imagenet-val" / "images"
    if not weights.exists() or not images.exists():
        pytest.skip(f"{SHARED} (shared weights and images) is absent")
    from PIL import Image
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(weights, map_location="cpu"))
    model.eval()
    n = 8 if SMOKE else 64
    files = sorted(images.iterdir())[:n]
    xs = torch.stack([torch.from_numpy(__import__("numpy").array(      # a writable copy
        Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR))).permute(2, 0, 1).float() / 255
        for f in files])
    norm = ((0.5,) * 3, (0.5,) * 3)
    cam = fastcam.GradCAM(model, "features.18", normalize=norm)
    cam.engine.inference_graph = variant == "inference graph"
    engine = Engine(model, inference_graph=variant == "inference graph")

    def fn():
        for i in range(0, n, 8):
            maps = cam(xs[i:i + 8])
            average_drop(engine, xs[i:i + 8], maps, cam.last.targets, normalize=norm)
    _bench(benchmark, fn, group=f"shared MobileNetV2 weights, {n} shared images: Grad-CAM + AD, B8",
           baseline=variant == "today's fastcam", rounds=2)
