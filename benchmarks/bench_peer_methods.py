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

from bench_precision import PRECISIONS, _fastcam, _group, _pgc, _torchcam, case  # noqa: F401

#: fastcam name -> (pytorch-grad-cam class, TorchCAM class or None, eager terms T(A, g) whose
#: channel sum is the map, or weights w(A, g) (B, K))
CASES = {
    "xgradcam": ("XGradCAM", "XGradCAM",
                 lambda A, g: ((g * A).sum((2, 3)) / (A.sum((2, 3)) + 1e-7))[:, :, None, None] * A),
    "hirescam": ("HiResCAM", None, lambda A, g: g * A),
    "gradcam-elementwise": ("GradCAMElementWise", None, lambda A, g: torch.relu(g * A)),
    "layercam": ("LayerCAM", "LayerCAM", lambda A, g: torch.relu(g) * A),
    "shapleycam": ("ShapleyCAM", None, None),
    "randomcam": ("RandomCAM", None, None),
}


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

    def run():
        seen = []

        def leaf(m, i, o):      # the graph starts at the layer: the backward stops there
            seen.append(o.detach().requires_grad_())
            return seen[-1]
        handle = module.register_forward_hook(leaf)
        try:
            logits = model(x)
        finally:
            handle.remove()
        A = seen[0]
        (g,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), A)
        with torch.no_grad():
            low = torch.relu(terms(A, g).sum(1, keepdim=True))
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
