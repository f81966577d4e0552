"""EigenCAM, EigenGradCAM, KPCA_CAM and SegEigenCAM: fastcam's native methods and its
pytorch-grad-cam front-end against the real pytorch-grad-cam 1.5.7 (ResNet-18 and
VGG16 in random init, batch 2, a ViT through reshape_transform), closed forms on a
toy model whose activation is rank one, batch against single images, bad input.

EigenCAM's and EigenGradCAM's SVD sign is arbitrary in pytorch-grad-cam (whatever
its LAPACK returns); their projection is compared with its sign chosen by
fastcam's rule. KPCA_CAM's and SegEigenCAM's signs are the methods' own: compared
as they are."""
import functools
import importlib

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

pgc = pytest.importorskip("pytorch_grad_cam")
pytest.importorskip("sklearn")
import pytorch_grad_cam.utils.svd_on_activations as their_svd  # noqa: E402
from pytorch_grad_cam.utils import model_targets as their_targets  # noqa: E402
from pytorch_grad_cam.utils import reshape_transforms as their_rt  # noqa: E402

from fastcam.compat.pytorch_grad_cam.eigen_cam import EigenCAM as FcEigen  # noqa: E402
from fastcam.compat.pytorch_grad_cam.eigen_grad_cam import EigenGradCAM as FcEigenGrad  # noqa: E402
from fastcam.compat.pytorch_grad_cam.kpca_cam import KPCA_CAM as FcKPCA  # noqa: E402
from fastcam.compat.pytorch_grad_cam.seg_eigen_cam import SegEigenCAM as FcSegEigen  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils import model_targets as our_targets  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils import reshape_transforms as our_rt  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils import svd_on_activations as our_svd  # noqa: E402
from fastcam import engine  # noqa: E402
from fastcam.methods import projection  # noqa: E402
from fastcam.methods.base import minmax  # noqa: E402
from fastcam.methods.eigencam import EigenCAM, EigenGradCAM  # noqa: E402
from fastcam.methods.kpcacam import KPCA_CAM  # noqa: E402
from fastcam.methods.segeigencam import SegEigenCAM  # noqa: E402

TOL = 1e-4
OURS = {"EigenCAM": FcEigen, "EigenGradCAM": FcEigenGrad, "KPCA_CAM": FcKPCA,
        "SegEigenCAM": FcSegEigen}
NATIVE = {"EigenCAM": EigenCAM, "EigenGradCAM": EigenGradCAM, "KPCA_CAM": KPCA_CAM,
          "SegEigenCAM": SegEigenCAM}


from _peer_models import quiet_peers  # noqa: E402,F401 (autouse)
from _peer_models import random_model as _model  # noqa: E402


def _layer(arch, model):
    return model.features[-1] if arch == "vgg16" else model.layer4[-1]


def _signed(orig):
    """pytorch-grad-cam's projection with fastcam's sign rule: Σ_k v_k ≥ 0 for the
    component's direction v ∝ Xᵀp (X the centred samples); where Σ_k v_k is
    rounding noise, |max p| ≥ |min p|. Their SVD sign is arbitrary."""
    def signed(a):
        p = orig(a)
        B, K = a.shape[:2]
        X = np.nan_to_num(a).reshape(B, K, -1).astype(np.float64)
        X = X - X.mean(axis=2, keepdims=True)
        v = np.einsum("bkn,bn->bk", X, p.reshape(B, -1))
        tie = np.abs(v.sum(1)) <= 1e-4 * np.abs(v).sum(1)
        flat = p.reshape(B, -1)
        flip = np.where(tie, np.abs(flat.min(1)) > np.abs(flat.max(1)), v.sum(1) < 0)
        return np.where(flip[:, None, None], -p, p).astype(np.float32)
    return signed


def _theirs(name, model, layers, x, targets, monkeypatch, reshape_transform=None, init=(), **kw):
    module = importlib.import_module(getattr(pgc, name).__module__)
    if hasattr(module, "get_2d_projection"):             # EigenCAM, EigenGradCAM
        monkeypatch.setattr(module, "get_2d_projection", _signed(their_svd.get_2d_projection))
    with getattr(pgc, name)(model, layers, reshape_transform, *init) as cam:
        return cam(x, targets, **kw)


def _ours(name, model, layers, x, targets, reshape_transform=None, init=(), **kw):
    with OURS[name](model, layers, reshape_transform, *init) as cam:
        return cam(x, targets, **kw)


def _check(ours, theirs):
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert ours.min() >= 0 and ours.max() <= 1
    err = np.abs(ours - theirs).max()
    assert err < TOL, err


def _targets(module, classes):
    return [module.ClassifierOutputTarget(c) for c in classes]


# -- parity with pytorch-grad-cam ---------------------------------------------------------
@pytest.mark.parametrize("arch", ["resnet18", "vgg16"])
@pytest.mark.parametrize("name", sorted(OURS))
def test_parity_with_pytorch_grad_cam(arch, name, monkeypatch):
    model = _model(arch)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 96 if arch == "resnet18" else 64, 96 if arch == "resnet18" else 64)
    layers = [_layer(arch, model)]
    theirs = _theirs(name, model, layers, x, _targets(their_targets, (3, 817)), monkeypatch)
    _check(_ours(name, model, layers, x, _targets(our_targets, (3, 817))), theirs)
    if arch == "resnet18":      # eigen_smooth changes nothing for these methods, in either package
        _check(_ours(name, model, layers, x, _targets(our_targets, (3, 817)), eigen_smooth=True), theirs)


@pytest.mark.parametrize("name", sorted(OURS))
def test_multi_layer_predicted_class_and_aug_smooth_parity(name, monkeypatch):
    model = _model("resnet18")
    torch.manual_seed(2)
    x = torch.randn(2, 3, 64, 64)
    layers = [model.layer3[-1], model.layer4[-1]]
    _check(_ours(name, model, layers, x, None), _theirs(name, model, layers, x, None, monkeypatch))
    if name == "EigenCAM":      # the front-end's one path for all four
        _check(_ours(name, model, layers[1:], x, None, aug_smooth=True),
               _theirs(name, model, layers[1:], x, None, monkeypatch, aug_smooth=True))


@pytest.mark.parametrize("kernel,gamma", [("linear", None), ("poly", 0.2), ("rbf", None),
                                          ("rbf", 0.005), ("cosine", None), ("sigmoid", 0.01)])
def test_kpca_kernels_parity(kernel, gamma, monkeypatch):
    model = _model("resnet18")
    torch.manual_seed(4)
    x = torch.randn(2, 3, 64, 64)
    layers = [model.layer3[-1]]                          # 4x4 positions
    _check(_ours("KPCA_CAM", model, layers, x, None, init=(kernel, gamma)),
           _theirs("KPCA_CAM", model, layers, x, None, monkeypatch, init=(kernel, gamma)))


@functools.lru_cache(maxsize=None)
def _vit():
    torch.manual_seed(0)
    return torchvision.models.vit_b_16(image_size=64).eval()       # 4x4 patches: quick


@pytest.mark.parametrize("name", sorted(OURS))
def test_vit_reshape_transform_parity(name, monkeypatch):
    vit = _vit()
    rt_theirs = functools.partial(their_rt.vit_reshape_transform, height=4, width=4)
    rt_ours = functools.partial(our_rt.vit_reshape_transform, height=4, width=4)
    layers = [vit.encoder.layers[-1].ln_1]
    torch.manual_seed(5)
    x = torch.randn(2, 3, 64, 64)
    _check(_ours(name, vit, layers, x, None, reshape_transform=rt_ours),
           _theirs(name, vit, layers, x, None, monkeypatch, reshape_transform=rt_theirs))


@pytest.mark.parametrize("name", sorted(OURS))
def test_front_end_is_the_native_method(name):
    model = _model("resnet18")
    torch.manual_seed(6)
    x = torch.randn(2, 3, 64, 64)
    native = NATIVE[name](model, "layer4")(x, [1, 2])
    ours = _ours(name, model, [model.layer4], x, _targets(our_targets, (1, 2)))
    np.testing.assert_allclose(ours, native.numpy(), atol=1e-6)


# -- closed forms: a rank-one activation ---------------------------------------------------
def _rank_one_model(K=5, C=4):
    """A = w x + b (a 1x1 conv of a one-channel image), then GAP + linear: centred
    over the positions A is (x − x̄) wᵀ, rank one; ∂y_c/∂A_k = W[c,k]/(hw) everywhere."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, K, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(K, C)).eval()


def test_closed_forms_on_a_rank_one_activation():
    model = _rank_one_model()
    w = model[0].weight[:, 0, 0, 0].detach()
    W = model[3].weight.detach()
    torch.manual_seed(1)
    x = torch.rand(2, 1, 6, 7)
    xc = (x - x.mean(dim=(2, 3), keepdim=True))[:, 0]                  # (B, h, w)
    c = torch.tensor([1, 3])

    def check(cam, p):
        maps = cam(x, c)
        torch.testing.assert_close(cam.last.low_res[0], torch.relu(p), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(maps, minmax(torch.relu(p)), rtol=1e-4, atol=1e-5)

    # EigenCAM: v = ±w/|w|, signed so that Σ v ≥ 0
    check(EigenCAM(model, "0"), xc * w.norm() * torch.sign(w.sum()))
    # EigenGradCAM: g ⊙ A has direction u_c = W[c] ⊙ w
    u = W[c] * w / 42
    check(EigenGradCAM(model, "0"), xc * (u.norm(dim=1) * torch.sign(u.sum(dim=1)))[:, None, None])
    # SegEigenCAM: |g| ⊙ A, signed so that |max| ≥ |min|
    p = xc * (W[c].abs() * w / 42).norm(dim=1)[:, None, None]
    flip = p.flatten(1).amin(1).abs() > p.flatten(1).amax(1).abs()
    check(SegEigenCAM(model, "0"), torch.where(flip[:, None, None], -p, p))
    # KPCA with a linear kernel is PCA; scikit-learn's sign: the largest |entry| positive
    p = xc * w.norm()
    peak = p.flatten(1).gather(1, p.flatten(1).abs().argmax(1, keepdim=True))[:, 0]
    check(KPCA_CAM(model, "0", kernel="linear"), p * torch.sign(peak)[:, None, None])


def test_eigencam_sign_points_the_way_of_the_channel_sum():
    model = _model("resnet18")
    torch.manual_seed(7)
    x = torch.randn(2, 3, 96, 96)
    cam = EigenCAM(model, "layer3")
    cam(x)
    A = cam.last.activations[0]
    p = projection.principal_projection(A)
    s = A.sum(1)
    cov = ((p - p.mean(dim=(1, 2), keepdim=True)) * (s - s.mean(dim=(1, 2), keepdim=True))).sum((1, 2))
    assert (cov > 0).all()
    torch.testing.assert_close(cam.last.low_res[0], torch.relu(p))
    # the same component, sign aside, as NumPy's SVD in pytorch-grad-cam
    theirs = torch.from_numpy(their_svd.get_2d_projection(A.numpy()))
    torch.testing.assert_close(p.abs(), theirs.abs(), rtol=1e-4, atol=1e-4 * theirs.abs().max().item())


# -- batches, options, errors ----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(NATIVE))
def test_batch_equals_single_images_and_bad_input(name):
    cls = NATIVE[name]
    model = _model("resnet18")
    torch.manual_seed(3)
    x = torch.randn(3, 3, 48, 40)
    together = cls(model, "layer3")(x, [1, 2, 3])
    cam = cls(model, "layer3")
    singles = torch.cat([cam(x[i:i + 1], [i + 1]) for i in range(3)])
    torch.testing.assert_close(together, singles, rtol=1e-4, atol=1e-5)
    assert together.shape == (3, 48, 40) and together.dtype == torch.float32
    with pytest.raises(ValueError, match="4-D"):
        cls(model, "layer4")(torch.randn(3, 48, 40))
    with pytest.raises(ValueError, match="NaN"):
        cls(model, "layer4")(torch.full((1, 3, 32, 32), float("nan")))
    with pytest.raises(Exception, match="(?i)target"):
        cls(model, "layer4")(x, [1, 2])
    with pytest.raises(ValueError, match="1×1"):
        cls(model, "layer4")(torch.randn(1, 3, 16, 16))
    with pytest.raises(TypeError):
        OURS[name](model, [model.layer4])(x.numpy())


def test_kpca_options_and_chunks():
    model = _model("resnet18")
    torch.manual_seed(8)
    x = torch.randn(3, 3, 64, 64)
    whole = KPCA_CAM(model, "layer3", kernel="rbf", gamma=0.1)(x)
    chunked = KPCA_CAM(model, "layer3", kernel="rbf", gamma=0.1, max_kernel_elements=16 * 16)(x)
    torch.testing.assert_close(whole, chunked)      # one image per chunk, the same maps
    with pytest.raises(ValueError, match="unknown kernel"):
        KPCA_CAM(model, "layer4", kernel="precomputed")
    with pytest.raises(TypeError):
        KPCA_CAM(model, "layer4", kernel=len)
    with pytest.raises(TypeError):
        KPCA_CAM(model, "layer4", gamma="0.1")
    with pytest.raises(ValueError, match="finite"):
        KPCA_CAM(model, "layer4", gamma=float("nan"))
    with pytest.raises(ValueError):
        KPCA_CAM(model, "layer4", max_kernel_elements=0)
    front = FcKPCA(model, [model.layer3], None, "poly", 0.3)       # pytorch-grad-cam's positions
    assert (front.kernel, front.gamma) == ("poly", 0.3)
    front.kernel, front.gamma = "rbf", 0.1
    np.testing.assert_allclose(front(x), whole.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="unknown kernel"):
        front.kernel = "chi2"


def test_svd_utilities_are_the_methods_projections():
    assert our_svd.principal_projection is projection.principal_projection
    assert our_svd.kernel_principal_projection is projection.kernel_principal_projection
    a = torch.rand(2, 6, 5, 4)
    torch.testing.assert_close(our_svd.get_2d_projection_with_sign_correction(a),
                               projection.sign_corrected_projection(a))


@pytest.mark.skipif(not engine.cpu_supports(torch.bfloat16), reason="no native bf16 on this CPU")
@pytest.mark.parametrize("name", ["EigenGradCAM", "KPCA_CAM"])
def test_bf16_model_passes_keep_the_projection_in_float32(name):
    model = _model("resnet18")
    torch.manual_seed(9)
    x = torch.randn(2, 3, 64, 64)
    cam = NATIVE[name](model, "layer3", precision="bf16")
    maps = cam(x)
    assert maps.dtype == torch.float32 and cam.last.low_res[0].dtype == torch.float32
    fp32 = NATIVE[name](model, "layer3")(x)
    assert torch.corrcoef(torch.stack([maps.flatten(), fp32.flatten()]))[0, 1] > 0.9
