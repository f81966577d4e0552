"""XGradCAM, HiResCAM, GradCAMElementWise, LayerCAM, ShapleyCAM and RandomCAM:
fastcam's native methods and its pytorch-grad-cam front-end against the real
pytorch-grad-cam 1.5.7 (ResNet-18 and VGG16 in random init, batch 2, a ViT through
reshape_transform), closed forms on a linear head, batch against single images."""
import functools

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

pgc = pytest.importorskip("pytorch_grad_cam")
import pytorch_grad_cam.utils.svd_on_activations as their_svd  # noqa: E402
from pytorch_grad_cam.utils import model_targets as their_targets  # noqa: E402
from pytorch_grad_cam.utils import reshape_transforms as their_rt  # noqa: E402

from fastcam.compat.pytorch_grad_cam.grad_cam_elementwise import GradCAMElementWise as FcElementWise  # noqa: E402
from fastcam.compat.pytorch_grad_cam.hirescam import HiResCAM as FcHiRes  # noqa: E402
from fastcam.compat.pytorch_grad_cam.layer_cam import LayerCAM as FcLayer  # noqa: E402
from fastcam.compat.pytorch_grad_cam.random_cam import RandomCAM as FcRandom  # noqa: E402
from fastcam.compat.pytorch_grad_cam.shapley_cam import ShapleyCAM as FcShapley  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils import model_targets as our_targets  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils import reshape_transforms as our_rt  # noqa: E402
from fastcam.compat.pytorch_grad_cam.xgrad_cam import XGradCAM as FcXGrad  # noqa: E402
from fastcam.methods.base import minmax  # noqa: E402
from fastcam.methods.elementwise import GradCAMElementWise, HiResCAM, LayerCAM  # noqa: E402
from fastcam.methods.randomcam import RandomCAM  # noqa: E402
from fastcam.methods.shapleycam import ShapleyCAM  # noqa: E402
from fastcam.methods.xgradcam import XGradCAM  # noqa: E402

TOL = 1e-4
OURS = {"XGradCAM": FcXGrad, "HiResCAM": FcHiRes, "GradCAMElementWise": FcElementWise,
        "LayerCAM": FcLayer, "ShapleyCAM": FcShapley}
NATIVE = [XGradCAM, HiResCAM, GradCAMElementWise, LayerCAM, ShapleyCAM]


from _peer_models import quiet_peers  # noqa: E402,F401 (autouse)
from _peer_models import random_model as _model  # noqa: E402


def _layer(arch, model):
    return model.features[-1] if arch == "vgg16" else model.layer4[-1]


def _signed(orig):
    """pytorch-grad-cam's projection with fastcam's sign rule (positive covariance
    with the plain channel sum): its SVD sign is arbitrary."""
    def signed(a):
        p = orig(a)
        c = a.sum(axis=1)
        cov = ((p - p.mean(axis=(1, 2), keepdims=True)) * (c - c.mean(axis=(1, 2), keepdims=True))).sum(axis=(1, 2))
        return np.where(cov[:, None, None] < 0, -p, p).astype(np.float32)
    return signed


def _theirs(name, model, layers, x, targets, monkeypatch, reshape_transform=None, **kw):
    import importlib
    module = importlib.import_module(getattr(pgc, name).__module__)
    for mod in (module, importlib.import_module("pytorch_grad_cam.base_cam")):
        if hasattr(mod, "get_2d_projection"):
            monkeypatch.setattr(mod, "get_2d_projection", _signed(their_svd.get_2d_projection))
    with getattr(pgc, name)(model, layers, reshape_transform=reshape_transform) as cam:
        return cam(x, targets, **kw)


def _ours(name, model, layers, x, targets, reshape_transform=None, **kw):
    with OURS[name](model, layers, reshape_transform=reshape_transform) as cam:
        return cam(x, targets, **kw)


def _check(ours, theirs):
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert ours.min() >= 0 and ours.max() <= 1
    err = np.abs(ours - theirs).max()
    assert err < TOL, err


@pytest.mark.parametrize("arch", ["resnet18", "vgg16"])
@pytest.mark.parametrize("name", sorted(OURS))
@pytest.mark.parametrize("kw", [{}, {"eigen_smooth": True}])
def test_parity_with_pytorch_grad_cam(arch, name, kw, monkeypatch):
    model = _model(arch)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    theirs_t = [their_targets.ClassifierOutputTarget(3), their_targets.ClassifierOutputTarget(817)]
    ours_t = [our_targets.ClassifierOutputTarget(3), our_targets.ClassifierOutputTarget(817)]
    layers = [_layer(arch, model)]
    _check(_ours(name, model, layers, x, ours_t, **kw),
           _theirs(name, model, layers, x, theirs_t, monkeypatch, **kw))


@pytest.mark.parametrize("name", sorted(OURS))
def test_softmax_targets_multi_layer_and_aug_smooth_parity(name, monkeypatch):
    """A softmax target (ShapleyCAM's Hessian term is non-zero there), two layers
    (the explicit multi-layer path) and aug_smooth."""
    model = _model("resnet18")
    torch.manual_seed(2)
    x = torch.randn(2, 3, 64, 64)
    layers = [model.layer3[-1], model.layer4[-1]]
    ours_t = [our_targets.ClassifierOutputSoftmaxTarget(c) for c in (5, 9)]
    theirs_t = [their_targets.ClassifierOutputSoftmaxTarget(c) for c in (5, 9)]
    # pytorch-grad-cam's ShapleyCAM frees the graph after the first layer's
    # Hessian-vector product (retain_graph=False): it can explain one layer only
    theirs_layers = layers[1:] if name == "ShapleyCAM" else layers
    _check(_ours(name, model, theirs_layers, x, ours_t),
           _theirs(name, model, theirs_layers, x, theirs_t, monkeypatch))
    if name == "ShapleyCAM":      # ours: with two layers, each layer's weights as if alone
        from fastcam.compat.pytorch_grad_cam._maps import combine_layers
        targets = [lambda row: row.softmax(0)[5], lambda row: row.softmax(0)[9]]
        alone = [ShapleyCAM(model, [layer]) for layer in layers]
        for cam in alone:
            cam(x, targets)
        expected = combine_layers([c.last.activations[0] for c in alone],
                                  [c.last.weights[0] for c in alone], (64, 64))
        _check(_ours(name, model, layers, x, ours_t), expected.numpy())
    _check(_ours(name, model, layers[1:], x, None, aug_smooth=True),
           _theirs(name, model, layers[1:], x, None, monkeypatch, aug_smooth=True))


@pytest.mark.parametrize("name", ["LayerCAM", "HiResCAM", "XGradCAM"])
def test_vit_reshape_transform_parity(name, monkeypatch):
    torch.manual_seed(0)
    vit = torchvision.models.vit_b_16(image_size=64).eval()       # 4x4 patches: quick
    rt_theirs = functools.partial(their_rt.vit_reshape_transform, height=4, width=4)
    rt_ours = functools.partial(our_rt.vit_reshape_transform, height=4, width=4)
    layers = [vit.encoder.layers[-1].ln_1]
    x = torch.randn(2, 3, 64, 64)
    _check(_ours(name, vit, layers, x, None, reshape_transform=rt_ours),
           _theirs(name, vit, layers, x, None, monkeypatch, reshape_transform=rt_theirs))


def test_shapleycam_hessian_term_against_double_backward(monkeypatch):
    """ShapleyCAM's weights on a softmax target equal mean(g − ½ H A) computed here
    with torch.func (an independent derivation), and differ from Grad-CAM's."""
    torch.manual_seed(0)
    head = nn.Sequential(nn.Conv2d(4, 6, 1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), head).eval()
    x = torch.randn(2, 3, 7, 5)
    cam = ShapleyCAM(model, "1")
    cam(x, targets=[lambda row: row.softmax(0)[1]] * 2)
    A = cam.last.activations[0]

    def score(a):
        return head(a[None]).softmax(1)[0, 1]
    expected = []
    for a in A:
        g = torch.func.grad(score)(a)
        _, hvp = torch.func.jvp(torch.func.grad(score), (a,), (a,))
        expected.append((g - 0.5 * hvp).mean(dim=(1, 2)))
    expected = torch.stack(expected)
    torch.testing.assert_close(cam.last.weights[0], expected, rtol=1e-5, atol=1e-6)
    grad_only = torch.stack([torch.func.grad(score)(a).mean(dim=(1, 2)) for a in A])
    assert (expected - grad_only).abs().max() > 0.02 * grad_only.abs().max()


def _linear_head_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 5)).eval()


def test_closed_forms_on_a_linear_head():
    """On conv + GAP + linear, g = W[c]/(hw) everywhere: HiResCAM's map is the
    positions' share of the logit, LayerCAM's and the element-wise ReLU(g)·A forms
    follow, XGradCAM's weights are W[c]/(hw) exactly (Σ A / (Σ A + eps))."""
    model = _linear_head_model()
    W = model[4].weight
    x = torch.rand(2, 3, 6, 7)
    A = torch.relu(model[0](x)).detach()
    c = torch.tensor([1, 4])
    Wc = W[c][:, :, None, None] / 42
    expected = {HiResCAM: (Wc * A).sum(1), GradCAMElementWise: torch.relu(Wc * A).sum(1),
                LayerCAM: (torch.relu(Wc) * A).sum(1)}
    for cls, low in expected.items():
        cam = cls(model, "1")
        maps = cam(x, c)
        torch.testing.assert_close(cam.last.low_res[0], torch.relu(low), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(maps, minmax(torch.relu(low)), rtol=1e-4, atol=1e-5)
        assert cam.last.weights == [] and len(cam.last.activations) == 1
    cam = XGradCAM(model, "1")
    cam(x, c)
    s = A.sum(dim=(2, 3))
    torch.testing.assert_close(cam.last.weights[0], Wc[:, :, 0, 0] * s / (s + 1e-7))
    sh = ShapleyCAM(model, "1")
    sh(x, c)
    torch.testing.assert_close(sh.last.weights[0], Wc[:, :, 0, 0])   # piecewise-linear tail: H A = 0


@pytest.mark.parametrize("cls", NATIVE + [RandomCAM])
def test_batch_equals_single_images_and_bad_input(cls):
    model = _model("resnet18")
    torch.manual_seed(3)
    x = torch.randn(3, 3, 48, 40)
    kw = {"seed": 0} if cls is RandomCAM else {}
    together = cls(model, "layer4", **kw)(x, [1, 2, 3])
    if cls is RandomCAM:        # the same weights drawn one image at a time
        cam = cls(model, "layer4", seed=0)
        singles = torch.cat([cam(x[i:i + 1], [i + 1]) for i in range(3)])
    else:
        cam = cls(model, "layer4")
        singles = torch.cat([cam(x[i:i + 1], [i + 1]) for i in range(3)])
    torch.testing.assert_close(together, singles, rtol=1e-4, atol=1e-5)
    assert together.shape == (3, 48, 40) and together.dtype == torch.float32
    with pytest.raises(ValueError):
        cls(model, "layer4", **kw)(torch.randn(3, 48, 40))
    with pytest.raises(ValueError):
        cls(model, "layer4", **kw)(torch.full((1, 3, 32, 32), float("nan")))
    with pytest.raises(Exception, match="(?i)target"):
        cls(model, "layer4", **kw)(x, [1, 2])


def test_randomcam_seed_and_weights():
    model = _model("resnet18")
    x = torch.randn(2, 3, 64, 64)
    a = RandomCAM(model, "layer4", seed=7)
    b = RandomCAM(model, "layer4", seed=7)
    torch.testing.assert_close(a(x), b(x))
    w = a.last.weights[0]
    assert w.shape == (2, 512) and w.min() >= -1 and w.max() < 1 and w.std() > 0.4
    torch.manual_seed(5)
    m1 = RandomCAM(model, "layer4")(x)
    torch.manual_seed(5)
    torch.testing.assert_close(RandomCAM(model, "layer4")(x), m1)
    with pytest.raises(TypeError):
        RandomCAM(model, "layer4", seed="1")


def test_randomcam_front_end_equals_theirs_for_the_same_weights(monkeypatch):
    """pytorch-grad-cam draws with np.random.uniform: hand it fastcam's weights."""
    import pytorch_grad_cam.random_cam as their_random
    model = _model("resnet18")
    x = torch.randn(2, 3, 64, 64)
    with FcRandom(model, [model.layer4[-1]], seed=3) as cam:
        ours = cam(x)
    native = RandomCAM(model, [model.layer4[-1]], seed=3)      # the same draw
    native(x)
    drawn = native.last.weights[0].numpy().astype(np.float64)
    monkeypatch.setattr(their_random.np.random, "uniform", lambda low, high, size: drawn)
    with pgc.RandomCAM(model, [model.layer4[-1]]) as cam:
        _check(ours, cam(x, None))
