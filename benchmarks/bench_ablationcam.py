"""Ablation-CAM: fastcam (fp32, the default, and bf16; the linear-head closed form it
picks on these models, and the tail path forced with ``fast_path="never"``) against
pytorch-grad-cam 1.5.7's ``AblationCAM`` and an eager implementation written here
(the same tail-only ablation, plainly: parameters frozen, inference mode, one hooked
forward for A, then the K ablated copies through the tail ``batch_size`` = 32 at a
time), one image: torchvision ResNet-50 (random init) at 224×224, layer4, and the
bundled EfficientNet-Lite0 on the chelsea photo, ``_head_act``. The group's baseline
row is pytorch-grad-cam (one call: it runs the whole model on K copies); the others
are the median of 3 after a warm-up call.

pytorch-grad-cam on ResNet-50 at 224×224 runs the whole network on 2048 copies (64
forwards of 32): about 40 minutes on the shared 2-core machine the results come from.
Its row there ablates 1/32 of the channels (``ratio_channels_to_ablate=1/64``: its
rule takes the 32 highest- and 32 lowest-scoring channels, 2 forwards of 32) and
``extra_info["pgc_scale"]`` = 32 is the factor to its full run (its cost is linear in
the channels ablated: identical forwards of ``batch_size`` copies, plus one forward of
the image and a 2048×49 SVD, both included once and so slightly over-counted).
"""
import pytest
import torch
import torchvision
from torch import nn

import fastcam
from fastcam.data import load_photos
from fastcam.engine import cpu_supports
from fastcam.methods.ablationcam import AblationCAM

from conftest import SMOKE

SIZE = 64 if SMOKE else 224
BATCH = 32
PRECISIONS = ["fp32"] + (["bf16"] if cpu_supports(torch.bfloat16) else [])


@pytest.fixture(scope="module", params=["resnet50", "efficientnet_lite0"])
def case(request):
    torch.manual_seed(0)
    if request.param == "resnet50":
        # the smoke run: ResNet-18 (same code paths, a quarter of the channels)
        model = (torchvision.models.resnet18 if SMOKE else torchvision.models.resnet50)().eval()
        x = torch.randn(1, 3, SIZE, SIZE)
        layer, tail = "layer4", lambda m: nn.Sequential(m.avgpool, nn.Flatten(), m.fc)
    else:
        model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
        x, _ = load_photos(size=SIZE)
        x = ((x - 0.5) / 0.5)[:1]
        layer, tail = "_head_act", lambda m: nn.Sequential(m._avg_pooling, m._flatten, m._fc)
    with torch.no_grad():
        targets = model(x).argmax(1)
    return request.param, model, layer, tail(model), x, targets


def _group(case):
    arch, *_, x, _ = case
    return f"ablationcam {arch} B{x.shape[0]} {x.shape[-1]}px"


def _run(benchmark, case, fn, *, baseline=False, note="", once=False):
    benchmark.group = _group(case)
    benchmark.extra_info["baseline"] = baseline
    benchmark.extra_info["note"] = note
    once = once or SMOKE
    return benchmark.pedantic(fn, rounds=1 if once else 3, iterations=1,
                              warmup_rounds=0 if once else 1)


@pytest.mark.parametrize("path", ["auto", "never"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_fastcam(benchmark, case, precision, path):
    arch, model, layer, _, x, targets = case
    cam = AblationCAM(model, layer, precision=precision, fast_path=path, batch_size=BATCH)
    maps = _run(benchmark, case, lambda: cam(x, targets),
                note=f"fastcam {precision} {'linear-head closed form' if path == 'auto' else 'tail path'}")
    assert maps.shape == (x.shape[0], *x.shape[-2:])
    assert cam.last.extra["path"] == ["linear-head" if path == "auto" else "tail"]


def test_pytorch_grad_cam(benchmark, case):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    arch, model, layer, _, x, targets = case
    partial = arch == "resnet50" and not SMOKE
    cam = pgc.AblationCAM(model=model, target_layers=[model.get_submodule(layer)],
                          batch_size=BATCH, ratio_channels_to_ablate=1 / 64 if partial else 1.0)
    tg = [ClassifierOutputTarget(int(t)) for t in targets]
    benchmark.extra_info["pgc_scale"] = 32 if partial else 1
    try:
        _run(benchmark, case, lambda: cam(input_tensor=x, targets=tg), baseline=True,
             note="pytorch-grad-cam (one call" + (", 1/32 of the channels: ×32 for all)" if partial else ")"),
             once=True)
    finally:
        cam.activations_and_grads.release()


def test_eager(benchmark, case):
    arch, model, layer, tail, x, targets = case
    module = model.get_submodule(layer)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)

    def run():
        with torch.inference_mode():
            seen = []
            handle = module.register_forward_hook(lambda m, i, o: seen.append(o))
            try:
                logits = model(x)
            finally:
                handle.remove()
            A = seen[0]
            B, K = A.shape[:2]
            y = logits.gather(1, targets[:, None])[:, 0]
            ablated = torch.empty(B, K)
            for b in range(B):
                for start in range(0, K, BATCH):
                    idx = torch.arange(start, min(K, start + BATCH))
                    copies = A[b:b + 1].repeat(idx.numel(), 1, 1, 1)
                    copies[torch.arange(idx.numel()), idx] = 0
                    ablated[b, idx] = tail(copies)[:, targets[b]]
            w = (y[:, None] - ablated) / y[:, None]
            low = torch.relu(torch.einsum("bk,bkhw->bhw", w, A))[:, None]
            up = torch.nn.functional.interpolate(low, size=x.shape[-2:], mode="bilinear",
                                                 align_corners=False)[:, 0]
            lo = up.amin((1, 2), keepdim=True)
            return (up - lo) / (up.amax((1, 2), keepdim=True) - lo + 1e-7)

    try:
        _run(benchmark, case, run, note="eager tail-only, frozen, inference mode, chunked")
    finally:
        for p in params:
            p.requires_grad_(True)
