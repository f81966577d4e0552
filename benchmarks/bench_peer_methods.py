"""pytorch-grad-cam's other methods, natively in fastcam (fp32, the default, and bf16),
against pytorch-grad-cam 1.5.7, TorchCAM 0.5.0 where it has the method, and an eager
implementation written here (parameters frozen, one hooked forward whose graph starts
at the layer, ``autograd.grad``, batched: the strongest baseline a good engineer would write),
in one run, on the cases of ``bench_precision`` (torchvision ResNet-50 B8 at 224, random
init; the bundled EfficientNet-Lite0 on its 8 photos). Each group's baseline row is
pytorch-grad-cam's. Median of 3 after a warm-up call.
"""
import pytest
import torch

import fastcam

from bench_precision import PRECISIONS, _run, release, SC_SIZE_R50, SMOKE_SC_LAYER, _fastcam, _group, _pgc, _torchcam, case  # noqa: F401
from conftest import SMOKE


def _pc1(X):
    """Eager first principal component of (B, K, h, w), batched (the sign left to LAPACK)."""
    B, K, h, w = X.shape
    S = X.reshape(B, K, -1).transpose(1, 2)
    S = S - S.mean(1, keepdim=True)
    _, _, Vh = torch.linalg.svd(S, full_matrices=False)
    return (S @ Vh[:, 0, :, None]).reshape(B, h, w)


#: fastcam name -> (pytorch-grad-cam class, TorchCAM class or None, the eager map before the
#: ReLU, (B, h, w) of A and g = ∂y_c/∂A (g None: no backward), or None)
CASES = {
    "xgradcam": ("XGradCAM", "XGradCAM",
                 lambda A, g: (((g * A).sum((2, 3)) / (A.sum((2, 3)) + 1e-7))[:, :, None, None] * A).sum(1)),
    "hirescam": ("HiResCAM", None, lambda A, g: (g * A).sum(1)),
    "gradcam-elementwise": ("GradCAMElementWise", None, lambda A, g: torch.relu(g * A).sum(1)),
    "layercam": ("LayerCAM", "LayerCAM", lambda A, g: (torch.relu(g) * A).sum(1)),
    "shapleycam": ("ShapleyCAM", None, None),
    "randomcam": ("RandomCAM", None, None),
    "eigencam": ("EigenCAM", None, lambda A, g: _pc1(A)),
    "eigengradcam": ("EigenGradCAM", None, lambda A, g: _pc1(g * A)),
    "kpcacam": ("KPCA_CAM", None, None),
    "segeigencam": ("SegEigenCAM", None, None),
    "fullgrad": ("FullGrad", None, None),
    "fem": ("FEM", None, None),
}
#: the eager maps that need no gradient (a forward under inference mode)
NO_GRAD = ("eigencam",)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("method", list(CASES))
def test_fastcam(benchmark, case, method, precision):
    _fastcam(benchmark, case, method, precision)


@pytest.mark.parametrize("method", list(CASES))
def test_pytorch_grad_cam(benchmark, case, method):
    _pgc(benchmark, case, CASES[method][0], group=_group(case, method))


@pytest.mark.parametrize("method", [m for m, c in CASES.items() if c[1]])
def test_torchcam(benchmark, case, method):
    _torchcam(benchmark, case, CASES[method][1], group=_group(case, method))


@pytest.mark.parametrize("method", [m for m, c in CASES.items() if c[2]])
def test_eager(benchmark, case, method):
    arch, model, layer, _, x, targets = case
    for p in model.parameters():
        p.requires_grad_(False)
    module = model.get_submodule(layer)
    terms = CASES[method][2]

    grad = method not in NO_GRAD

    def run():
        seen = []

        def leaf(m, i, o):      # the graph starts at the layer: the backward stops there
            seen.append(o.detach().requires_grad_(grad))
            return seen[-1]
        handle = module.register_forward_hook(leaf)
        try:
            with torch.inference_mode(not grad):
                logits = model(x)
        finally:
            handle.remove()
        A = seen[0]
        g = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), A)[0] if grad else None
        with torch.no_grad():
            low = torch.relu(terms(A, g))[:, None]
            up = torch.nn.functional.interpolate(low, size=x.shape[-2:], mode="bilinear",
                                                 align_corners=False)[:, 0]
            lo = up.amin((1, 2), keepdim=True)
            return (up - lo) / (up.amax((1, 2), keepdim=True) - lo + 1e-7)

    try:
        benchmark.group = _group(case, method)
        benchmark.extra_info["note"] = "eager, frozen"
        benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)


# -- TorchCAM's noisy / interpolated methods ------------------------------------------------------

#: fastcam name -> (TorchCAM class, options of both, one image or the batch). SS-CAM and IS-CAM
#: run num_samples × K masked forwards of one image (ResNet-50 at 112 px as Score-CAM in
#: bench_precision; 2 samples, not TorchCAM's default 35 / 10: the cost is linear in them)
NOISY = {
    "sscam": ("SSCAM", {"num_samples": 2, "std": 2.0, "batch_size": 32}, True),
    "iscam": ("ISCAM", {"num_samples": 2, "batch_size": 32}, True),
    "smoothgradcampp": ("SmoothGradCAMpp", {"num_samples": 4, "std": 0.3}, False),
}


def _noisy_case(case, method):
    arch, model, layer, tail, x, targets = case
    one = NOISY[method][2]
    if one:
        if SMOKE:
            layer = SMOKE_SC_LAYER[arch]
        if arch == "resnet50":
            x = torch.nn.functional.interpolate(x[:1], size=(SC_SIZE_R50, SC_SIZE_R50),
                                                mode="bilinear", align_corners=False)
        else:
            x = x[:1]
        with torch.no_grad():
            targets = model(x).argmax(1)
    group = f"{method} {arch} B{x.shape[0]} {x.shape[-1]}px"
    return (arch, model, layer, tail, x, targets), group


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("method", list(NOISY))
def test_fastcam_noisy(benchmark, case, method, precision):
    c, group = _noisy_case(case, method)
    options = dict(NOISY[method][1]) | ({} if method == "iscam" else {"seed": 0})  # IS-CAM has no noise
    if method == "smoothgradcampp":             # what TorchCAM computes: its numerics
        from fastcam.compat.numerics import TorchCAMSmoothGradCAMpp
        options["cls"] = TorchCAMSmoothGradCAMpp
    _fastcam(benchmark, c, method, precision, group=group, x=c[4], targets=c[5], **options)


@pytest.mark.parametrize("method", list(NOISY))
def test_torchcam_noisy(benchmark, case, method):
    c, group = _noisy_case(case, method)
    kw = dict(NOISY[method][1])
    if method == "smoothgradcampp":
        kw.pop("batch_size", None)
    _torchcam(benchmark, c, NOISY[method][0], group=group, x=c[4], targets=c[5], **kw)


# -- Finer-CAM (the predicted class against its closest ones) and Refine-CAM (two layers) -------

#: Refine-CAM's layers: the last two stages
REFINE_LAYERS = {"resnet50": ["layer3", "layer4"], "efficientnet_lite0": ["_blocks.15", "_head_act"]}


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("method", ["finercam", "refinecam"])
def test_fastcam_wrapped(benchmark, case, method, precision):
    arch, model, layer, _, x, targets = case
    if method == "finercam":
        cam = fastcam.FinerCAM(model, layer, precision=precision)
        fn = lambda: cam(x)            # noqa: E731  targets None: the predicted class vs its neighbours
    else:
        cam = fastcam.RefineCAM(model, REFINE_LAYERS[arch], precision=precision)
        fn = lambda: cam(x, targets)   # noqa: E731
    _run(benchmark, _group(case, method), fn, note=f"fastcam {precision}")


@pytest.mark.parametrize("method", ["finercam", "refinecam"])
def test_pytorch_grad_cam_wrapped(benchmark, case, method):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    arch, model, layer, _, x, targets = case
    if method == "finercam":
        cam = pgc.FinerCAM(model, [model.get_submodule(layer)])
        fn = lambda: cam(x)            # noqa: E731
    else:
        cam = pgc.RefineCAM(model, [model.get_submodule(n) for n in REFINE_LAYERS[arch]])
        tg = [ClassifierOutputTarget(int(t)) for t in targets]
        fn = lambda: cam(x, tg)        # noqa: E731
    try:
        _run(benchmark, _group(case, method), fn, baseline=True, note="pytorch-grad-cam")
    finally:
        release(cam)


# -- LeGrad: a ViT ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vit():
    """torchvision ViT-B/16 (random init, its zero-initialised head re-drawn so that the maps
    are not all 0) on B8 images at 224 (smoke: a 2-block ViT at 32 px), its last 4 blocks."""
    import torchvision
    torch.manual_seed(0)
    if SMOKE:
        model = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2,
                                                     num_heads=2, hidden_dim=16, mlp_dim=32)
        x = torch.randn(2, 3, 32, 32)
    else:
        model = torchvision.models.vit_b_16()
        x = torch.randn(8, 3, 224, 224)
    model.eval()
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    blocks = list(model.encoder.layers)[-4:]
    with torch.no_grad():
        targets = model(x).argmax(1)
    return model, blocks, x, targets


def _vit_group(vit):
    return f"legrad vit_b_16 B{vit[2].shape[0]} last {len(vit[1])} blocks"


@pytest.mark.parametrize("precision", PRECISIONS)
def test_fastcam_legrad(benchmark, vit, precision):
    model, blocks, x, targets = vit
    cam = fastcam.LeGrad(model, blocks, precision=precision)
    _run(benchmark, _vit_group(vit), lambda: cam(x, targets), note=f"fastcam {precision}")


def test_torchcam_legrad(benchmark, vit):
    methods = pytest.importorskip("torchcam.methods")
    model, blocks, x, targets = vit
    extractor = methods.LeGrad(model, blocks)

    def run():
        out = model(x)
        return extractor(targets.tolist(), out)

    try:
        _run(benchmark, _vit_group(vit), run, baseline=True, note="TorchCAM (low-resolution maps)")
    finally:
        extractor.remove_hooks()
