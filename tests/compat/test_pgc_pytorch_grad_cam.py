"""fastcam.compat.pytorch_grad_cam against the real pytorch-grad-cam (grad-cam 1.5.7).

Parity: the same maps (within 1e-4) from the same call on torchvision models in
random init — ResNet-18/50, VGG16 and a ViT-B/16 with reshape_transform — for
GradCAM, GradCAMPlusPlus and ScoreCAM, with aug_smooth and eigen_smooth; the
target classes, the utilities, and where the front-end is deliberately better.
"""
import functools
import warnings

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

pgc = pytest.importorskip("pytorch_grad_cam")
cv2 = pytest.importorskip("cv2")
import pytorch_grad_cam.base_cam as pgc_base  # noqa: E402
from pytorch_grad_cam.utils import image as their_image  # noqa: E402
from pytorch_grad_cam.utils import model_targets as their_targets  # noqa: E402
from pytorch_grad_cam.utils import reshape_transforms as their_rt  # noqa: E402

import fastcam.compat.pytorch_grad_cam as fc  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils import image as our_image  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils import model_targets as our_targets  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils import reshape_transforms as our_rt  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils.svd_on_activations import (  # noqa: E402
    get_2d_projection, principal_projection)

TOL = 1e-4


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _model(name, **kw):
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(**kw).eval()


@functools.lru_cache(maxsize=None)
def _models():
    return {"resnet18": _model("resnet18"), "resnet50": _model("resnet50"), "vgg16": _model("vgg16")}


def _layer(arch, model):
    return model.features[-1] if arch == "vgg16" else model.layer4[-1]


def _theirs(cls, model, layers, x, targets, eigen_signs_like_ours=False, **kw):
    """pytorch-grad-cam's maps and outputs; optionally with each eigen projection's
    sign chosen by our rule (positive covariance with the plain weighted sum)."""
    orig = pgc_base.get_2d_projection

    def signed(a):
        p = orig(a)
        c = a.sum(axis=1)
        cov = ((p - p.mean(axis=(1, 2), keepdims=True)) * (c - c.mean(axis=(1, 2), keepdims=True))).sum(axis=(1, 2))
        return np.where(cov[:, None, None] < 0, -p, p).astype(np.float32)

    if eigen_signs_like_ours:
        pgc_base.get_2d_projection = signed
    try:
        with getattr(pgc, cls)(model, layers, **{k: v for k, v in kw.items() if k == "reshape_transform"}) as cam:
            maps = cam(x, targets, **{k: v for k, v in kw.items() if k != "reshape_transform"})
            return maps, cam.outputs.detach()
    finally:
        pgc_base.get_2d_projection = orig


def _ours(cls, model, layers, x, targets, **kw):
    rt = kw.pop("reshape_transform", None)
    with getattr(fc, cls)(model, layers, reshape_transform=rt) as cam:
        maps = cam(x, targets, **kw)
        return maps, cam.outputs


def _check(ours, theirs):
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert ours.min() >= 0 and ours.max() <= 1
    err = np.abs(ours - theirs).max()
    assert err < TOL, err


# -- map parity -------------------------------------------------------------------
CASES = [
    ("resnet18", 224, "GradCAM", {}), ("resnet18", 224, "GradCAMPlusPlus", {}),
    ("resnet18", 64, "GradCAM", {"aug_smooth": True}),
    ("resnet18", 96, "GradCAMPlusPlus", {"eigen_smooth": True}),
    ("resnet18", 64, "GradCAM", {"aug_smooth": True, "eigen_smooth": True}),
    ("resnet50", 96, "GradCAM", {}), ("resnet50", 96, "GradCAMPlusPlus", {"eigen_smooth": True}),
    ("vgg16", 96, "GradCAM", {"eigen_smooth": True}), ("vgg16", 96, "GradCAMPlusPlus", {}),
]


@pytest.mark.parametrize("arch,size,cls,kw", CASES)
def test_cnn_parity(arch, size, cls, kw):
    model = _models()[arch]
    x = torch.randn(2, 3, size, size)
    targets = [our_targets.ClassifierOutputTarget(3), our_targets.ClassifierOutputTarget(817)]
    theirs_t = [their_targets.ClassifierOutputTarget(3), their_targets.ClassifierOutputTarget(817)]
    layers = [_layer(arch, model)]
    ref, ref_out = _theirs(cls, model, layers, x, theirs_t, eigen_signs_like_ours=True, **kw)
    maps, out = _ours(cls, model, layers, x, targets, **kw)
    _check(maps, ref)
    if not kw.get("aug_smooth"):
        # fastcam's engine runs conv models on channels-last input (pytorch-grad-cam: NCHW):
        # oneDNN's other convolution kernels round the float32 logits differently (ResNet-50: 4e-5)
        torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-4)


def test_predicted_class_targets_multi_layer_and_callables():
    model = _models()["resnet18"]
    x = torch.randn(2, 3, 96, 96)
    layers = [model.layer3[-1], model.layer4[-1]]           # the explicit multi-layer path
    _check(_ours("GradCAM", model, layers, x, None)[0], _theirs("GradCAM", model, layers, x, None)[0])
    soft = [our_targets.ClassifierOutputSoftmaxTarget(c) for c in (1, 2)]
    soft_t = [their_targets.ClassifierOutputSoftmaxTarget(c) for c in (1, 2)]
    _check(_ours("GradCAMPlusPlus", model, layers[1:], x, soft)[0],
           _theirs("GradCAMPlusPlus", model, layers[1:], x, soft_t)[0])


def test_vit_reshape_transform_parity():
    torch.manual_seed(0)
    vit = torchvision.models.vit_b_16().eval()
    layers = [vit.encoder.layers[-1].ln_1]
    x = torch.randn(1, 3, 224, 224)
    ref, ref_out = _theirs("GradCAM", vit, layers, x, [their_targets.ClassifierOutputTarget(5)],
                           reshape_transform=their_rt.vit_reshape_transform)
    maps, out = _ours("GradCAM", vit, layers, x, [our_targets.ClassifierOutputTarget(5)],
                      reshape_transform=our_rt.vit_reshape_transform)
    _check(maps, ref)
    torch.testing.assert_close(out, ref_out)


@pytest.mark.parametrize("cls,kw", [("GradCAM", {"aug_smooth": True}),
                                    ("GradCAMPlusPlus", {"eigen_smooth": True})])
def test_vit_smoothing_with_their_transform_unchanged(cls, kw):
    torch.manual_seed(0)
    vit = torchvision.models.vit_b_16(image_size=64).eval()       # 4x4 patches: quick
    rt = functools.partial(their_rt.vit_reshape_transform, height=4, width=4)
    layers = [vit.encoder.layers[-1].ln_1]
    x = torch.randn(2, 3, 64, 64)
    ref, _ = _theirs(cls, vit, layers, x, None, eigen_signs_like_ours=True, reshape_transform=rt, **kw)
    _check(_ours(cls, vit, layers, x, None, reshape_transform=rt, **kw)[0], ref)


def test_scorecam_parity_resnet18():
    model = _models()["resnet18"]
    x = torch.randn(1, 3, 64, 64)
    layers = [model.layer4[-1]]                             # 512 channels, 2x2 at 64 px
    ref, _ = _theirs("ScoreCAM", model, layers, x, [their_targets.ClassifierOutputTarget(7)])
    with fc.ScoreCAM(model, layers) as cam:
        assert cam.batch_size == 16                         # pytorch-grad-cam's default
        cam.batch_size = 64
        maps = cam(x, [our_targets.ClassifierOutputTarget(7)])
    _check(maps, ref)


class _Tiny(nn.Module):
    """A small CNN: classifier (B, 10), or a segmenter (B, 3, H, W), or one logit."""

    def __init__(self, head="cls"):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.head = head
        self.fc = nn.Linear(16, 1 if head == "binary" else 10)
        self.seg = nn.Conv2d(16, 3, 1)

    def forward(self, x):
        f = self.features(x)
        if self.head == "seg":
            return nn.functional.interpolate(self.seg(f), size=x.shape[-2:], mode="bilinear")
        return self.fc(f.mean(dim=(2, 3)))


@pytest.mark.parametrize("kw", [{"aug_smooth": True}, {"eigen_smooth": True}])
def test_scorecam_smoothing_parity(kw):
    torch.manual_seed(0)
    model = _Tiny().eval()
    x = torch.randn(2, 3, 24, 24)
    ref, _ = _theirs("ScoreCAM", model, [model.features[-1]], x, None, eigen_signs_like_ours=True, **kw)
    _check(_ours("ScoreCAM", model, [model.features[-1]], x, None, **kw)[0], ref)


def test_segmentation_and_binary_targets_parity():
    torch.manual_seed(0)
    seg = _Tiny("seg").eval()
    x = torch.randn(2, 3, 16, 16)
    mask = np.zeros((16, 16), np.float32)
    mask[4:10, 2:12] = 1
    ref, _ = _theirs("GradCAM", seg, [seg.features[-1]], x,
                     [their_targets.SemanticSegmentationTarget(c, mask) for c in (0, 2)])
    _check(_ours("GradCAM", seg, [seg.features[-1]], x,
                 [our_targets.SemanticSegmentationTarget(c, mask) for c in (0, 2)])[0], ref)
    binary = _Tiny("binary").eval()
    ref, _ = _theirs("GradCAMPlusPlus", binary, [binary.features[-1]], x,
                     [their_targets.BinaryClassifierOutputTarget(c) for c in (0, 1)])
    _check(_ours("GradCAMPlusPlus", binary, [binary.features[-1]], x,
                 [our_targets.BinaryClassifierOutputTarget(c) for c in (0, 1)])[0], ref)


# -- target classes and utilities against theirs ------------------------------------------
@pytest.mark.parametrize("name,args", [
    ("ClassifierOutputTarget", (3,)), ("ClassifierOutputSoftmaxTarget", (3,)),
    ("ClassifierOutputReST", (3,)), ("BinaryClassifierOutputTarget", (0,)),
    ("BinaryClassifierOutputTarget", (1,)), ("RawScoresOutputTarget", ()),
    ("SoftmaxOutputTarget", ())])
def test_target_classes_match(name, args):
    for out in (torch.randn(10), torch.randn(4, 10)):
        torch.testing.assert_close(getattr(our_targets, name)(*args)(out),
                                   getattr(their_targets, name)(*args)(out))
    mask = (np.random.default_rng(0).random((5, 6)) > 0.5).astype(np.float32)
    out = torch.randn(3, 5, 6)
    torch.testing.assert_close(our_targets.SemanticSegmentationTarget(1, mask)(out),
                               their_targets.SemanticSegmentationTarget(1, mask)(out))


def test_image_utils_match():
    rng = np.random.default_rng(0)
    img = rng.random((20, 30, 3), dtype=np.float32)
    mask = rng.random((20, 30), dtype=np.float32)
    assert our_image.COLORMAP_JET == cv2.COLORMAP_JET
    for kw in ({}, {"use_rgb": True}, {"image_weight": 0.3, "colormap": cv2.COLORMAP_VIRIDIS}):
        np.testing.assert_array_equal(our_image.show_cam_on_image(img, mask, **kw),
                                      their_image.show_cam_on_image(img, mask, **kw))
    with pytest.raises(ValueError, match="range"):
        our_image.show_cam_on_image(img * 255, mask)
    with pytest.raises(ValueError, match="image_weight"):
        our_image.show_cam_on_image(img, mask, image_weight=1.5)
    u8 = (img * 255).astype(np.uint8)
    for arr, kw in ((img, {}), (u8, {}), (img.astype(np.float64), {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.3, 0.4]})):
        a, b = our_image.preprocess_image(arr, **kw), their_image.preprocess_image(arr, **kw)
        assert a.dtype == b.dtype and a.shape == (1, 3, 20, 30)
        torch.testing.assert_close(a, b)
    np.testing.assert_array_equal(our_image.deprocess_image(img * 3 - 1), their_image.deprocess_image(img * 3 - 1))
    cams = rng.standard_normal((3, 7, 5)).astype(np.float32)
    np.testing.assert_allclose(our_image.scale_cam_image(cams), their_image.scale_cam_image(cams), atol=1e-6)
    for size in ((40, 21), (5, 7), (3, 3)):     # (width, height): up, identity, down
        a, b = our_image.scale_cam_image(cams, size), their_image.scale_cam_image(cams, size)
        assert a.dtype == np.float32 and a.shape == b.shape == (3, size[1], size[0])
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_reshape_transforms_and_projection_match():
    tokens = torch.randn(2, 1 + 14 * 14, 8)
    torch.testing.assert_close(our_rt.vit_reshape_transform(tokens), their_rt.vit_reshape_transform(tokens))
    tokens = torch.randn(2, 49, 8)
    torch.testing.assert_close(our_rt.swinT_reshape_transform(tokens), their_rt.swinT_reshape_transform(tokens))
    acts = np.random.default_rng(1).standard_normal((4, 16, 5, 6)).astype(np.float32)
    ours, theirs = get_2d_projection(acts), pgc.utils.get_2d_projection(acts)
    assert ours.dtype == np.float32 and ours.shape == (4, 5, 6)
    for o, t, a in zip(ours, theirs, acts):     # equal up to the SVD's arbitrary sign ...
        assert min(np.abs(o - t).max(), np.abs(o + t).max()) < 1e-4
        c = a.sum(0)                            # ... which we fix: positive covariance
        assert ((o - o.mean()) * (c - c.mean())).sum() >= 0     # with the plain sum
    # batched, on the tensor's device, differentiable
    t = torch.from_numpy(acts).requires_grad_(True)
    principal_projection(t).square().sum().backward()
    assert t.grad is not None and torch.isfinite(t.grad).all()


# -- where the front-end is deliberately better ----------------------------------------------
def test_targets_length_must_match_batch():
    model = _Tiny().eval()
    cam = fc.GradCAM(model, [model.features[-1]])
    x = torch.randn(3, 3, 16, 16)
    with pytest.raises(ValueError, match="2 targets for a batch of 3"):
        cam(x, [our_targets.ClassifierOutputTarget(1)] * 2)
    with pytest.raises(ValueError, match="4 targets for a batch of 3"):
        cam(x, [our_targets.ClassifierOutputTarget(1)] * 4, aug_smooth=True)


def test_legacy_use_cuda_warns_and_errors_propagate():
    model = _Tiny()
    model.train()
    with pytest.warns(DeprecationWarning, match="use_cuda") as record:
        fc.ScoreCAM(model, [model.features[-1]], use_cuda=True)
    assert record[0].filename == __file__           # points at the caller's line
    with pytest.warns(DeprecationWarning, match="use_cuda"):
        cam = fc.GradCAM(model=model, target_layers=[model.features[-1]], use_cuda=False)
    assert not model.training                       # model.eval(), as pytorch-grad-cam
    with pytest.raises(IndexError):                 # pytorch-grad-cam swallows IndexError here
        with cam:
            cam(torch.randn(1, 3, 16, 16), [our_targets.ClassifierOutputTarget(3)])
            [][0]
    with pytest.raises(ValueError, match="eigen_smooth"):
        fc.ShapCAM(model, [model.features[-1]])(torch.randn(1, 3, 16, 16), eigen_smooth=True)
    with pytest.raises(ValueError, match="reshape_transform"):
        fc.LiftCAM(model, [model.features[-1]], reshape_transform=our_rt.vit_reshape_transform)


def test_no_parameter_gradients_and_outputs():
    model = _Tiny().eval()
    x = torch.randn(2, 3, 16, 16)
    with fc.GradCAMPlusPlus(model, [model.features[-1]]) as cam:
        maps = cam(x, [their_targets.ClassifierOutputTarget(2), our_targets.ClassifierOutputTarget(4)])
        assert maps.shape == (2, 16, 16)
        torch.testing.assert_close(cam.outputs, model(x).detach())
        cam(x, aug_smooth=True)
        torch.testing.assert_close(cam.outputs, model(x).detach())   # the input as given
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name,opts", [("LiftCAM", {}), ("ShapCAM", {"permutations": 2}),
                                       ("OptiCAM", {"max_iter": 2}), ("ADVISE", {})])
def test_fastcam_methods_under_the_same_conventions(name, opts):
    import fastcam

    torch.manual_seed(0)
    model = _Tiny().eval()
    x = torch.randn(2, 3, 16, 16)
    targets = [our_targets.ClassifierOutputTarget(c) for c in (1, 5)]
    with getattr(fc, name)(model, [model.features[-1]], **opts) as cam:
        maps = cam(x, targets)
        smooth = cam(x, targets, aug_smooth=True)
    for m in (maps, smooth):
        assert isinstance(m, np.ndarray) and m.dtype == np.float32 and m.shape == (2, 16, 16)
        assert m.min() >= 0 and m.max() <= 1
    direct = getattr(fastcam, name)(model, model.features[-1], **opts)(x, [1, 5])
    np.testing.assert_allclose(maps, direct.numpy(), atol=1e-6)
    torch.testing.assert_close(cam.outputs, model(x).detach())
