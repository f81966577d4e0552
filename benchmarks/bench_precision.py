"""Every method, fastcam fp32 (the default) and bf16, against every peer that
computes the same thing, in one run: torchvision ResNet-50 (random init, B8) and
the bundled EfficientNet-Lite0 (the 8 bundled photos).

Peers: pytorch-grad-cam 1.5.7, TorchCAM 0.5.0, Captum 0.9.0 (fp32: none of them
takes an autocast precision), and for LIFT-CAM, Opti-CAM and Shap-CAM a competent
eager implementation written here from the papers' equations: parameters frozen,
no parameter gradients, inference mode where no gradient is needed, batched.
Every peer gets the model's (normalised) input tensor as it is; fastcam gets the
same tensor with ``normalize=None``.

Sizes (to fit this 2-core machine; docs/benchmarks.md says so):
Opti-CAM runs ``OPTI_ITERS`` iterations (every method's cost is linear in them),
Score-CAM one image (ResNet-50 at 112×112, its 2048 masked forwards; the
EfficientNet at 224×224 on the chelsea photo). The group's baseline row is
pytorch-grad-cam where it has the method, else TorchCAM (CAM), else the eager
implementation, else fastcam fp32 (ADVISE). Score-CAM and Opti-CAM rows are one
call each; the others the median of 3 after a warm-up call.
"""
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import fastcam
from fastcam.compat.numerics import PytorchGradCAMScoreCAM
from fastcam.data import load_photos
from fastcam.engine import cpu_supports

from conftest import SMOKE

B, SIZE = (2, 64) if SMOKE else (8, 224)
SC_SIZE_R50 = 64 if SMOKE else 112
OPTI_ITERS = 2 if SMOKE else 10
SHAP_PERMS = 2 if SMOKE else 16
PRECISIONS = ["fp32"] + (["bf16"] if cpu_supports(torch.bfloat16) else [])


def _freeze(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture(scope="module", params=["resnet50", "efficientnet_lite0"])
def case(request):
    torch.manual_seed(0)
    if request.param == "resnet50":
        # the smoke run: ResNet-18 (same code paths, a quarter of the channels)
        model = (torchvision.models.resnet18 if SMOKE else torchvision.models.resnet50)().eval()
        x = torch.randn(B, 3, SIZE, SIZE)
        layer, tail = "layer4", lambda m: nn.Sequential(m.avgpool, nn.Flatten(), m.fc)
    else:
        model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
        x, _ = load_photos(size=SIZE)
        x = ((x - 0.5) / 0.5)[:B]
        layer, tail = "_head_act", lambda m: nn.Sequential(m._avg_pooling, m._flatten, m._fc)
    with torch.no_grad():
        targets = model(x).argmax(1)
    return request.param, model, layer, tail(model), x, targets


def _group(case, method, suffix=""):
    arch, *_, x, _ = case
    return f"{method} {arch} B{x.shape[0]}{suffix}"


#: Score-CAM, Opti-CAM, SS-CAM, IS-CAM and FullGrad (pytorch-grad-cam: over a minute): one timed call (no warm-up, for every row alike); the
#: others: one warm-up call, then the median of 3
EXPENSIVE = ("scorecam", "opticam", "sscam", "iscam", "fullgrad")


def _run(benchmark, group, fn, *, baseline=False, note=""):
    benchmark.group = group
    benchmark.extra_info["baseline"] = baseline
    if note:
        benchmark.extra_info["note"] = note
    once = group.split()[0] in EXPENSIVE or SMOKE
    return benchmark.pedantic(fn, rounds=1 if once else 3, iterations=1, warmup_rounds=0 if once else 1)


def _fastcam(benchmark, case, method, precision, *, group=None, x=None, targets=None,
             baseline=False, cls=None, **options):
    arch, model, layer, _, x0, t0 = case
    x = x0 if x is None else x
    targets = t0 if targets is None else targets
    cls = cls or fastcam.METHODS[method]        # or another library's numerics (compat)
    if options.get("mode") == "pytorch-grad-cam":     # pytorch-grad-cam's numerics
        cls = PytorchGradCAMScoreCAM
    cam = cls(model, layer, precision=precision, **options)
    maps = _run(benchmark, group or _group(case, method), lambda: cam(x, targets),
                baseline=baseline, note=f"fastcam {precision}")
    assert maps.shape == (x.shape[0], *x.shape[-2:])


def _pgc(benchmark, case, cls_name, *, group=None, x=None, targets=None, **attrs):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    arch, model, layer, _, x0, t0 = case
    x = x0 if x is None else x
    targets = t0 if targets is None else targets
    cam = getattr(pgc, cls_name)(model=model, target_layers=[model.get_submodule(layer)])
    for k, v in attrs.items():
        setattr(cam, k, v)
    tg = [ClassifierOutputTarget(int(t)) for t in targets]
    try:
        _run(benchmark, group or _group(case, _METHOD_OF[cls_name]), lambda: cam(input_tensor=x, targets=tg),
             baseline=True, note="pytorch-grad-cam")
    finally:
        release(cam)


def release(cam):
    """Removes a pytorch-grad-cam object's hooks (its wrappers keep their base CAMs')."""
    for c in [cam, getattr(cam, "base_cam", None), *getattr(cam, "base_cam_per_layer", [])]:
        if c is not None and hasattr(c, "activations_and_grads"):
            c.activations_and_grads.release()


def _torchcam(benchmark, case, cls_name, *, group=None, x=None, targets=None, **kw):
    methods = pytest.importorskip("torchcam.methods")
    arch, model, layer, _, x0, t0 = case
    x = x0 if x is None else x
    targets = t0 if targets is None else targets
    extractor = getattr(methods, cls_name)(model, target_layer=layer, **kw)

    def run():
        out = model(x)
        return extractor(targets.tolist(), out)

    try:
        with (torch.no_grad() if cls_name in ("CAM", "ScoreCAM", "SSCAM", "ISCAM") else torch.enable_grad()):
            _run(benchmark, group or _group(case, _METHOD_OF["tc" + cls_name]), run,
                 baseline=cls_name in TORCHCAM_ONLY, note="TorchCAM (low-resolution maps)")
    finally:
        extractor.remove_hooks()


#: TorchCAM's methods that pytorch-grad-cam lacks: TorchCAM is their groups' baseline
TORCHCAM_ONLY = ("CAM", "SSCAM", "ISCAM", "SmoothGradCAMpp")

_METHOD_OF = {"GradCAM": "gradcam", "GradCAMPlusPlus": "gradcam++", "ScoreCAM": "scorecam",
              "tcCAM": "cam", "tcGradCAM": "gradcam", "tcGradCAMpp": "gradcam++",
              "tcScoreCAM": "scorecam"}


# -- CAM, Grad-CAM, Grad-CAM++ ------------------------------------------------------------------

@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("method", ["cam", "gradcam", "gradcam++"])
def test_fastcam(benchmark, case, method, precision):
    _fastcam(benchmark, case, method, precision)


@pytest.mark.parametrize("cls_name", ["GradCAM", "GradCAMPlusPlus"])
def test_pytorch_grad_cam(benchmark, case, cls_name):
    _pgc(benchmark, case, cls_name)


@pytest.mark.parametrize("cls_name", ["CAM", "GradCAM", "GradCAMpp"])
def test_torchcam(benchmark, case, cls_name):
    kw = {"fc_layer": "fc" if case[0] == "resnet50" else "_fc"} if cls_name == "CAM" else {}
    _torchcam(benchmark, case, cls_name, **kw)


def test_captum_gradcam(benchmark, case):
    attr = pytest.importorskip("captum.attr")
    arch, model, layer, _, x, targets = case
    gc = attr.LayerGradCam(model, model.get_submodule(layer))

    def run():
        m = gc.attribute(x, target=targets, relu_attributions=True)
        return attr.LayerAttribution.interpolate(m, x.shape[-2:], interpolate_mode="bilinear")

    _run(benchmark, _group(case, "gradcam"), run, note="Captum LayerGradCam + upsample")


# -- Score-CAM: one image ----------------------------------------------------------------------

#: Score-CAM's layer in the smoke run: an early one with few channels (64, 16)
SMOKE_SC_LAYER = {"resnet50": "layer1", "efficientnet_lite0": "_blocks.0"}


def _scorecam_case(case):
    if not SMOKE:
        return case
    arch, model, layer, tail, x, targets = case
    return arch, model, SMOKE_SC_LAYER[arch], tail, x, targets


def _scorecam_input(case):
    arch, model, layer, _, x, targets = case
    if arch == "resnet50":
        x = F.interpolate(x[:1], size=(SC_SIZE_R50, SC_SIZE_R50), mode="bilinear", align_corners=False)
    else:
        x = x[:1]                                   # the chelsea photo
    with torch.no_grad():
        t = model(x).argmax(1)
    return x, t, f"scorecam {arch} B1 {x.shape[-1]}px"


@pytest.mark.parametrize("precision", PRECISIONS)
def test_fastcam_scorecam(benchmark, case, precision):
    case = _scorecam_case(case)
    x, t, group = _scorecam_input(case)
    _fastcam(benchmark, case, "scorecam", precision, group=group, x=x, targets=t,
             mode="pytorch-grad-cam")


def test_pytorch_grad_cam_scorecam(benchmark, case):
    case = _scorecam_case(case)
    x, t, group = _scorecam_input(case)
    _pgc(benchmark, case, "ScoreCAM", group=group, x=x, targets=t)


def test_torchcam_scorecam(benchmark, case):
    case = _scorecam_case(case)
    x, t, group = _scorecam_input(case)
    _torchcam(benchmark, case, "ScoreCAM", group=group, x=x, targets=t, batch_size=16)


# -- LIFT-CAM: DeepLIFT on the tail ----------------------------------------------------------

@pytest.mark.parametrize("precision", PRECISIONS)
def test_fastcam_liftcam(benchmark, case, precision):
    _fastcam(benchmark, case, "liftcam", precision)


def _capture(model, layer, x):
    store = {}
    h = model.get_submodule(layer).register_forward_hook(lambda m, i, o: store.__setitem__("A", o))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        h.remove()
    return store["A"].clone()


def _combine(A, w, size):
    cam = torch.relu(torch.einsum("bk,bkhw->bhw", w, A))[:, None]
    cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0]
    lo = cam.amin(dim=(1, 2), keepdim=True)
    rng = cam.amax(dim=(1, 2), keepdim=True) - lo
    return torch.where(rng > 0, (cam - lo) / rng.clamp(min=1e-12), 0)


def test_eager_liftcam(benchmark, case):
    attr = pytest.importorskip("captum.attr")
    arch, model, layer, tail, x, targets = case
    _freeze(model)
    dl = attr.DeepLift(tail)

    def run():
        A = _capture(model, layer, x)
        C = dl.attribute(A, baselines=torch.zeros_like(A), target=targets)
        return _combine(A, C.sum(dim=(2, 3)), x.shape[-2:])

    try:
        _run(benchmark, _group(case, "liftcam"), run, baseline=True,
             note="eager: hooked forward, Captum DeepLift on the batched tail")
    finally:
        for p in model.parameters():
            p.requires_grad_(True)


# -- Opti-CAM -------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", PRECISIONS)
def test_fastcam_opticam(benchmark, case, precision):
    _fastcam(benchmark, case, "opticam", precision, group=_group(case, "opticam", f" {OPTI_ITERS} iters"),
             max_iter=OPTI_ITERS, stop=None)


def test_eager_opticam(benchmark, case):
    arch, model, layer, _, x, targets = case
    rows = torch.arange(x.shape[0])

    def run():
        _freeze(model)
        try:
            A = _capture(model, layer, x)
            u = torch.ones(A.shape[:2], requires_grad=True)
            opt = torch.optim.Adam([u], lr=0.1)
            for _ in range(OPTI_ITERS):
                opt.zero_grad()
                mask = _combine(A, torch.softmax(u, 1), x.shape[-2:])
                loss = -model(x * mask[:, None])[rows, targets].sum()
                loss.backward()
                opt.step()
            return mask
        finally:
            for p in model.parameters():
                p.requires_grad_(True)

    _run(benchmark, _group(case, "opticam", f" {OPTI_ITERS} iters"), run, baseline=True,
         note="eager: frozen parameters, batched Adam")


# -- Shap-CAM -------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", PRECISIONS)
def test_fastcam_shapcam(benchmark, case, precision):
    _fastcam(benchmark, case, "shapcam", precision, permutations=SHAP_PERMS, baseline="zero")


def test_eager_shapcam(benchmark, case):
    """Per image: SHAP_PERMS random orders of the h·w positions; the worth of each
    nested coalition is the tail's softmax probability of the target on the
    activation with the absent positions zeroed (chunks of 128 under inference
    mode); φ = the mean marginal contribution."""
    arch, model, layer, tail, x, targets = case

    def run():
        A = _capture(model, layer, x)
        Bn, K, h, w = A.shape
        n = h * w
        phi = torch.zeros(Bn, n)
        gen = torch.Generator().manual_seed(0)
        with torch.inference_mode():
            for b in range(Bn):
                perms = torch.stack([torch.randperm(n, generator=gen) for _ in range(SHAP_PERMS)])
                masks = torch.zeros(SHAP_PERMS, n + 1, n)
                for t in range(1, n + 1):
                    masks[:, t] = masks[:, t - 1]
                    masks[torch.arange(SHAP_PERMS), t, perms[:, t - 1]] = 1
                masks = masks.reshape(-1, 1, h, w)
                v = torch.cat([tail(A[b:b + 1] * masks[i:i + 128]).softmax(1)[:, targets[b]]
                               for i in range(0, len(masks), 128)]).view(SHAP_PERMS, n + 1)
                marg = torch.zeros(SHAP_PERMS, n)
                marg.scatter_(1, perms, v[:, 1:] - v[:, :-1])
                phi[b] = marg.mean(0)
        cam = torch.relu(phi.view(Bn, 1, h, w))
        return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)

    _run(benchmark, _group(case, "shapcam"), run, baseline=True,
         note="eager: zero baseline, chunked tail passes")


# -- ADVISE (no peer computes it) -----------------------------------------------------------

@pytest.mark.parametrize("precision", PRECISIONS)
def test_fastcam_advise(benchmark, case, precision):
    _fastcam(benchmark, case, "advise", precision, baseline=precision == "fp32")
