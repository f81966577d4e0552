"""LIFT-CAM and the batched DeepLIFT under it: the linear-tail closed form,
summation-to-delta on every tail, hand-derived multipliers, Captum's DeepLift
(and where it is wrong), batch == single images, targets and errors."""
import functools
import warnings
from collections import OrderedDict

import pytest
import torch
import torchvision
from torch import nn

import fastcam
from fastcam.methods.liftcam import LiftCAM
from fastcam.network.deeplift import DeepLift, UnsupportedLayerError, deeplift
from fastcam.network.split import split


@functools.lru_cache(maxsize=None)
def _model(arch: str) -> nn.Module:
    torch.manual_seed(0)
    if arch == "efficientnet_lite0":
        return fastcam.models.efficientnet_lite0(pretrained=True)
    return getattr(torchvision.models, arch)(num_classes=10).eval()


def _vgg_like(K=3, double=True):
    """A small VGG16 tail behind an identity-like target: ReLU (target) -> maxpool
    -> fc -> ReLU -> fc -> ReLU -> fc."""
    torch.manual_seed(3)
    model = nn.Sequential(OrderedDict(
        feat=nn.ReLU(), pool=nn.MaxPool2d(2), flat=nn.Flatten(),
        fc1=nn.Linear(K * 4, 6), relu1=nn.ReLU(), fc2=nn.Linear(6, 5), relu2=nn.ReLU(),
        fc3=nn.Linear(5, 3))).eval()
    return model.double() if double else model


# -- known answers ----------------------------------------------------------------------

@pytest.mark.parametrize("arch,layer", [("resnet18", "layer4"), ("efficientnet_lite0", "_head_act")])
def test_linear_tail_closed_form(arch, layer):
    # global average pool + fc: φ_k = W[c,k]·mean(A_k) exactly
    model = _model(arch)
    fc = model.fc if arch == "resnet18" else model._fc
    x = torch.randn(3, 3, 64, 64)
    with LiftCAM(model, layer) as cam:
        maps = cam(x, [1, 5, 7])
        A = cam.last.activations[0]
        expected = fc.weight[[1, 5, 7]].detach() * A.mean(dim=(2, 3))
        torch.testing.assert_close(cam.last.weights[0], expected, rtol=1e-4, atol=1e-6)
        low = torch.relu(torch.einsum("bk,bkhw->bhw", expected, A))
        torch.testing.assert_close(cam.last.low_res[0], low, rtol=1e-4, atol=1e-6)
    assert maps.shape == (3, 64, 64) and maps.min() >= 0 and maps.max() == 1


SUMMATION_CASES = [
    ("resnet18", "layer4"), ("resnet18", "layer4.0.conv2"), ("resnet50", "layer4"),
    ("vgg16", "features.29"), ("vgg16", "features.28"), ("vgg16_bn", "features.42"),
    ("mobilenet_v2", "features.18"), ("mobilenet_v3_small", "features.12"),
    ("mobilenet_v3_large", "features.16"), ("densenet121", "features"),
    ("efficientnet_b0", "features.8"), ("efficientnet_lite0", "_head_act"),
]


@pytest.mark.parametrize("arch,layer", SUMMATION_CASES)
def test_summation_to_delta_on_every_tail(arch, layer):
    # Σ_k φ_k = y_c(A) − y_c(0), with y_c(0) from the tail run on its own
    model = _model(arch)
    x = torch.randn(2, 3, 64, 64)
    with LiftCAM(model, layer) as cam:
        cam(x)          # its first call also checks its split: tail(prefix(x)) == model(x)
        phi, c = cam.last.weights[0], cam.last.targets
        logits, A = cam.last.logits, cam.last.activations[0]
    prefix, tail = split(model, layer)      # the model as given (the method ran on its inference graph)
    with torch.no_grad():
        prefix(x)                           # side values (a mid-block layer's skip) of x
        y0 = tail(torch.zeros_like(A))
    delta = (logits - y0).gather(1, c[:, None])[:, 0]
    scale = cam.last.extra["contributions"][0].flatten(1).abs().sum(1) + delta.abs()
    assert ((phi.sum(1) - delta).abs() <= 1e-5 * scale + 1e-7).all(), (phi.sum(1), delta)
    torch.testing.assert_close(cam.last.extra["delta"][0], delta)


def test_vgg_tail_hand_derived_multipliers():
    model = _vgg_like()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    targets = [2, 0]
    with LiftCAM(model, "feat") as cam:
        cam(x, targets)
        phi = cam.last.weights[0]
        contributions = cam.last.extra["contributions"][0]
    W1, b1 = model.fc1.weight.detach(), model.fc1.bias.detach()
    W2, b2 = model.fc2.weight.detach(), model.fc2.bias.detach()
    W3 = model.fc3.weight.detach()
    A = torch.relu(x)
    for b, c in enumerate(targets):
        p = torch.zeros(3, 2, 2, dtype=torch.float64)
        argmax = {}
        for k in range(3):
            for i in range(2):
                for j in range(2):
                    win = A[b, k, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
                    p[k, i, j] = win.max()
                    a = int(win.argmax())
                    argmax[k, i, j] = (2 * i + a // 2, 2 * j + a % 2)
        # forward of the input and the zero reference (maxpool(0) = 0)
        z1, z1r = W1 @ p.flatten() + b1, b1
        h1, h1r = torch.relu(z1), torch.relu(z1r)
        z2, z2r = W2 @ h1 + b2, W2 @ h1r + b2
        # backward: secants of the ReLUs, weights of the linear layers
        r2 = (torch.relu(z2) - torch.relu(z2r)) / (z2 - z2r)
        r1 = (h1 - h1r) / (z1 - z1r)
        m_p = (W1.T @ ((W2.T @ (W3[c] * r2)) * r1)).reshape(3, 2, 2)
        # max pool with a zero reference: each window's max rose from 0 by p, carried by
        # its argmax with multiplier p / (A_argmax - 0) = 1
        m_A = torch.zeros(3, 4, 4, dtype=torch.float64)
        for (k, i, j), (u, v) in argmax.items():
            if p[k, i, j] > 0:
                m_A[k, u, v] = m_p[k, i, j]
        torch.testing.assert_close(contributions[b], m_A * A[b])
        torch.testing.assert_close(phi[b], (m_p * p).sum(dim=(1, 2)))


def test_maxpool_rule_hand_derived_with_a_random_reference():
    # overlapping windows with padding; the reference is not zero, so maxima rise and fall
    torch.manual_seed(5)
    model = nn.Sequential(OrderedDict(
        feat=nn.Identity(), pool=nn.MaxPool2d(3, stride=2, padding=1), flat=nn.Flatten(),
        fc=nn.Linear(2 * 3 * 3, 3))).double().eval()
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    ref = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    prefix, tail = split(model, "feat")
    with torch.no_grad():
        A = prefix(x)
    result = deeplift(tail, A, [1, 2], reference=ref)
    W = model.fc.weight.detach().reshape(3, 2, 3, 3)
    expected = torch.zeros_like(A)
    falls = 0
    for b, c in enumerate([1, 2]):
        for k in range(2):
            for i in range(3):
                for j in range(3):
                    rows = range(max(2 * i - 1, 0), min(2 * i + 2, 5))
                    cols = range(max(2 * j - 1, 0), min(2 * j + 2, 5))
                    cells = [(u, v) for u in rows for v in cols]
                    xa = max(cells, key=lambda uv: A[b, k, uv[0], uv[1]])
                    ra = max(cells, key=lambda uv: ref[0, k, uv[0], uv[1]])
                    dy = A[b, k, xa[0], xa[1]] - ref[0, k, ra[0], ra[1]]
                    u, v = xa if dy >= 0 else ra          # who carries the change
                    falls += int(dy < 0)
                    dx = A[b, k, u, v] - ref[0, k, u, v]
                    expected[b, k, u, v] += W[c, k, i, j] * dy / dx
    assert falls > 0                                       # both branches exercised
    torch.testing.assert_close(result.multipliers, expected)
    assert (result.summation_error < 1e-12).all()


def test_elementwise_rescale_uses_the_gradient_when_input_equals_reference():
    model = nn.Sequential(OrderedDict(feat=nn.Identity(), act=nn.SiLU(), pool=nn.AdaptiveAvgPool2d(1),
                                      flat=nn.Flatten(), fc=nn.Linear(2, 2))).double().eval()
    A = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    A[0, 0, 0, 0] = 0.0                              # equals the zero reference
    _, tail = split(model, "feat")
    result = deeplift(tail, A, 0)
    silu = nn.functional.silu
    secant = silu(A) / A
    secant[0, 0, 0, 0] = 0.5                          # SiLU'(0)
    expected = model.fc.weight[0].detach().reshape(1, 2, 1, 1) / 9 * secant
    torch.testing.assert_close(result.multipliers, expected)


# -- Captum ------------------------------------------------------------------------------

def _captum_vgg16_tail(model):
    """torchvision VGG16 after features.29 as one module for Captum (ReLUs not in place)."""
    cls = model.classifier
    return nn.Sequential(model.features[30], model.avgpool, nn.Flatten(1), cls[0], nn.ReLU(),
                         cls[2], cls[3], nn.ReLU(), cls[5], cls[6]).eval()


def test_agrees_with_captum_on_the_vgg16_tail():
    captum = pytest.importorskip("captum.attr")
    model = _model("vgg16")
    x = torch.randn(3, 3, 64, 64)
    with LiftCAM(model, "features.29") as cam:
        cam(x)
        ours = cam.last.extra["contributions"][0]
        A, c = cam.last.activations[0], cam.last.targets
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = captum.DeepLift(_captum_vgg16_tail(model)).attribute(
            A.clone(), baselines=torch.zeros_like(A), target=c)
    scale = float(ours.abs().max())
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-4, atol=1e-5 * scale)


def _pool_then_fc(pool, relu_first):
    torch.manual_seed(7)
    layers = [("feat", nn.Identity())] + ([("relu", nn.ReLU())] if relu_first else []) + [
        ("pool", pool), ("flat", nn.Flatten()), ("fc1", nn.Linear(4 * 2 * 2 if relu_first else 4 * 3 * 3, 6)),
        ("relu1", nn.ReLU()), ("fc2", nn.Linear(6, 3))]
    return nn.Sequential(OrderedDict(layers)).double().eval()


@pytest.mark.parametrize("case", ["relu_then_maxpool", "overlapping_maxpool"])
def test_where_captum_disagrees_ours_sums_to_delta(case):
    # Captum 0.9's DeepLift misses summation-to-delta on these tails: a ReLU feeding a
    # max pool with a non-zero reference, and overlapping pooling windows (its max-unpool
    # assigns instead of accumulating). Ours holds to rounding on both.
    captum = pytest.importorskip("captum.attr")
    if case == "relu_then_maxpool":
        model, size = _pool_then_fc(nn.MaxPool2d(2), relu_first=True), 4
    else:
        model, size = _pool_then_fc(nn.MaxPool2d(3, stride=1), relu_first=False), 5
    A = torch.randn(4, 4, size, size, dtype=torch.float64)
    ref = torch.randn(1, 4, size, size, dtype=torch.float64)
    _, tail = split(model, "feat")
    ours = deeplift(tail, A, 0, reference=ref)
    captum_tail = nn.Sequential(*list(model.children())[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = captum.DeepLift(captum_tail).attribute(A, baselines=ref.expand_as(A), target=0)
    with torch.no_grad():
        delta = (captum_tail(A) - captum_tail(ref))[:, 0]
    torch.testing.assert_close(ours.delta, delta)
    ours_error = (ours.contributions.flatten(1).sum(1) - delta).abs().max()
    theirs_error = (theirs.flatten(1).sum(1) - delta).abs().max()
    assert ours_error < 1e-12
    if not torch.allclose(ours.contributions, theirs, atol=1e-9):
        assert theirs_error > 1e-6          # the one that disagrees is the one off the delta


def test_captum_maxpool_fallback_uses_the_first_image_ours_does_not():
    # pytorch/captum#1276: where |Δx| < eps at a max pool's input, Captum 0.9 uses the
    # gradient of the first row of the batch for every image. It changes multipliers only
    # where Δx = 0, so contributions agree; our multipliers do not depend on the batch.
    captum = pytest.importorskip("captum.attr")
    model = _vgg_like()
    _, tail = split(model, "feat")
    A = torch.relu(torch.randn(3, 3, 4, 4, dtype=torch.float64))     # zeros: Δx = 0 there
    ours_batch = deeplift(tail, A, 1).multipliers
    ours_single = torch.cat([deeplift(tail, A[i:i + 1], 1).multipliers for i in range(3)])
    torch.testing.assert_close(ours_batch, ours_single)
    captum_tail = nn.Sequential(*list(model.children())[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dl = captum.DeepLift(captum_tail, multiply_by_inputs=False)
        theirs_batch = dl.attribute(A, baselines=torch.zeros_like(A), target=1)
        theirs_single = torch.cat([dl.attribute(A[i:i + 1], baselines=torch.zeros_like(A[:1]),
                                                 target=1) for i in range(3)])
    torch.testing.assert_close(theirs_single, ours_single)     # single images: the same rule
    moved = (theirs_batch - theirs_single).abs() > 1e-12
    assert (A[moved] == 0).all()          # batch effects only where Δx = 0 ...
    torch.testing.assert_close(theirs_batch * A, ours_batch * A)   # ... so contributions agree


# -- batching, targets, records --------------------------------------------------------

@pytest.mark.parametrize("arch,layer", [("resnet18", "layer4"), ("vgg16", "features.29")])
def test_batch_equals_single_images(arch, layer):
    model = _model(arch)
    x = torch.randn(3, 3, 64, 64)
    targets = [0, 5, 9]
    with LiftCAM(model, layer) as cam:
        batch = cam(x, targets)
        w_batch = cam.last.weights[0]
        singles, w_single = [], []
        for i, t in enumerate(targets):
            singles.append(cam(x[i:i + 1], [t]))
            w_single.append(cam.last.weights[0])
    torch.testing.assert_close(batch, torch.cat(singles), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(w_batch, torch.cat(w_single), atol=1e-6, rtol=1e-4)


def test_targets_ints_tensors_callables_agree_and_record():
    model = _model("resnet18")
    x = torch.randn(2, 3, 64, 64)
    with LiftCAM(model) as cam:
        default = cam(x)
        assert cam.target_layers == [model.layer4]
        assert torch.equal(cam.last.targets, cam.last.logits.argmax(1))
        a = cam(x, 4)
        extra = cam.last.extra
        assert set(extra) == {"contributions", "delta", "reference_scores", "summation_error"}
        assert extra["contributions"][0].shape == cam.last.activations[0].shape
        b = cam(x, torch.tensor([4, 4]))
        c = cam(x, [lambda row: row[4]] * 2)
        assert cam.last.targets is None
    assert default.shape == (2, 64, 64)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    with pytest.raises(ValueError, match="got 3 targets for a batch of 2"):
        LiftCAM(model)(x, [1, 2, 3])


def test_multiple_layers_normalize_and_grad_contexts():
    model = _model("resnet18")
    x = torch.rand(2, 3, 64, 64)
    norm = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with LiftCAM(model, ["layer3", "layer4"], normalize=norm) as cam:
        both = cam(x, [1, 2])
        assert len(cam.last.weights) == 2 and len(cam.last.extra["delta"]) == 2
    with torch.inference_mode():
        m3 = LiftCAM(model, "layer3", normalize=norm)(x, [1, 2])
    with torch.no_grad():
        m4 = LiftCAM(model, "layer4", normalize=norm)(x, [1, 2])
    mean = (m3 + m4) / 2
    lo, hi = mean.amin((1, 2), keepdim=True), mean.amax((1, 2), keepdim=True)
    torch.testing.assert_close(both, (mean - lo) / (hi - lo))


def test_model_parameters_untouched_and_frozen_models_work():
    model = torchvision.models.resnet18(num_classes=4).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(1, 3, 64, 64)
    maps = LiftCAM(model, "layer4")(x)
    assert maps.amax() == 1 and all(p.grad is None for p in model.parameters())


# -- errors and the hook fallback -------------------------------------------------------

class _Head(nn.Module):
    def __init__(self, tail_layer):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), tail_layer, nn.Linear(16, 3))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


@pytest.mark.parametrize("layer,match", [
    (nn.LayerNorm(16), r"module 'classifier.2' \(LayerNorm\)"),
    (nn.Softmax(dim=1), r"module 'classifier.2' \(Softmax\)"),
])
def test_unsupported_tail_layer_is_named(layer, match):
    model = _Head(layer).eval()
    with pytest.raises(UnsupportedLayerError, match=match):
        LiftCAM(model, "features")(torch.randn(1, 3, 8, 8), 0)


def test_products_of_activation_terms_and_training_mode_are_errors():
    class SE(nn.Module):           # squeeze-excitation after the target: A * gate(A)
        def __init__(self):
            super().__init__()
            self.features = nn.Conv2d(3, 4, 3)
            self.gate = nn.Sigmoid()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            a = self.features(x)
            a = a * self.gate(a.mean((2, 3), keepdim=True))
            return self.fc(a.mean((2, 3)))

    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(UnsupportedLayerError, match="multiplies two tensors"):
        LiftCAM(SE().eval(), "features")(x, 0)
    model = _Head(nn.BatchNorm1d(16)).eval()
    LiftCAM(model, "features")(x, 0)
    model.classifier[2].train()
    with pytest.warns(UserWarning, match="training mode"), \
            pytest.raises(UnsupportedLayerError, match="classifier.2.*batch statistics"):
        model.train()
        LiftCAM(model, "features")(x, 0)


class _Branchy(nn.Module):
    """Data-dependent control flow after the target: split falls back to hooks."""

    def __init__(self, functional=False):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 6, 3, stride=2, padding=1))
        self.act = nn.ReLU6()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 5)
        self.functional = functional

    def forward(self, x):
        a = self.features(x)
        if a.sum() > -1e9:
            a = a * 1.5
        if self.functional:
            a = torch.tanh(a)          # invisible to module hooks
        return self.fc(self.pool(self.act(a)).flatten(1))


def test_hook_fallback_matches_the_traced_rules():
    model = _Branchy().eval()
    x = torch.randn(3, 3, 16, 16)
    with pytest.warns(UserWarning, match="torch.fx could not trace"):
        with LiftCAM(model, "features") as cam:
            maps = cam(x, [0, 1, 2])
    assert split(model, "features")[1].mode == "hooks"
    # the same computation written traceably
    traceable = nn.Sequential(OrderedDict(features=model.features, scale=_Scale(1.5), act=model.act,
                                          pool=model.pool, flat=nn.Flatten(), fc=model.fc)).eval()
    with LiftCAM(traceable, "features") as ref_cam:
        expected = ref_cam(x, [0, 1, 2])
    torch.testing.assert_close(cam.last.weights[0], ref_cam.last.weights[0], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(maps, expected, rtol=1e-5, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UnsupportedLayerError, match="hooks cannot see"):
            LiftCAM(_Branchy(functional=True).eval(), "features")(x, [0, 1, 2])


class _Scale(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, a):
        return a * self.s


def test_deeplift_engine_checks_its_input():
    _, tail = split(_vgg_like(), "feat")
    with pytest.raises(TypeError, match="tail returned by"):
        DeepLift(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="does not match"):
        DeepLift(tail).forward(torch.rand(2, 3, 4, 4, dtype=torch.float64),
                               torch.zeros(2, 3, 2, 2, dtype=torch.float64))


def test_real_model_peak_on_the_cat():
    from fastcam.data import load_photos

    model = _model("efficientnet_lite0")
    x, _ = load_photos(["chelsea"])
    with LiftCAM(model, "_head_act", normalize=model.normalization) as cam:
        maps = cam(x)
        A, c = cam.last.activations[0], cam.last.targets
        torch.testing.assert_close(cam.last.weights[0],
                                   model._fc.weight[c].detach() * A.mean(dim=(2, 3)),
                                   rtol=1e-4, atol=1e-6)
    iy, ix = divmod(int(maps[0].argmax()), 224)
    assert 40 <= iy <= 200 and 20 <= ix <= 170, (iy, ix)
    assert maps[0, :, 200:].mean() < maps[0, 40:200, 20:170].mean()
