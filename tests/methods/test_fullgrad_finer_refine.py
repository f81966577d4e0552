"""FullGrad, Finer-CAM and Refine-CAM (native and pytorch-grad-cam front-end) against
pytorch-grad-cam 1.5.7, and the TorchCAM numerics (``fastcam.compat.numerics``) of XGradCAM,
LayerCAM, GradCAMPlusPlus, FinerCAM and RefineCAM against TorchCAM 0.5.0's extractors
(ResNet-18 and VGG16 in random init, batch 2); closed forms on a linear head,
batch against single images, bad input."""

import pytest
import torch
from torch import nn

pgc = pytest.importorskip("pytorch_grad_cam")
tcm = pytest.importorskip("torchcam.methods")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget as TheirTarget  # noqa: E402

from fastcam.compat.pytorch_grad_cam.finer_cam import FinerCAM as FcFiner  # noqa: E402
from fastcam.compat.pytorch_grad_cam.fullgrad_cam import FullGrad as FcFullGrad  # noqa: E402
from fastcam.compat.pytorch_grad_cam.layer_cam import LayerCAM as FcLayer  # noqa: E402
from fastcam.compat.pytorch_grad_cam.refine_cam import RefineCAM as FcRefine  # noqa: E402
from fastcam.compat.pytorch_grad_cam.score_cam import ScoreCAM as FcScore  # noqa: E402
from fastcam.compat import numerics as tcn  # noqa: E402
from fastcam.compat.numerics import (TorchCAMFinerCAM, TorchCAMGradCAMPlusPlus,  # noqa: E402
                                     TorchCAMLayerCAM, TorchCAMRefineCAM, TorchCAMXGradCAM)
from fastcam.methods.base import upsample  # noqa: E402
from fastcam.methods.base import BaseCAM  # noqa: E402
from fastcam.methods.elementwise import LayerCAM  # noqa: E402
from fastcam.methods.finercam import FinerCAM  # noqa: E402
from fastcam.methods.fullgrad import FullGrad  # noqa: E402
from fastcam.methods.gradcam import GradCAM  # noqa: E402
from fastcam.methods.gradcam_plusplus import GradCAMPlusPlus  # noqa: E402
from fastcam.methods.refinecam import RefineCAM  # noqa: E402
from fastcam.methods.scorecam import ScoreCAM  # noqa: E402
from fastcam.methods.xgradcam import XGradCAM  # noqa: E402

TOL = 1e-4
ARCHS = ["resnet18", "vgg16"]
LAYER = {"resnet18": "layer4", "vgg16": "features.29"}
LAYERS = {"resnet18": ["layer2", "layer3", "layer4"],
          "vgg16": ["features.15", "features.22", "features.29"]}
PAIRS = [(pgc.GradCAM, GradCAM), (pgc.GradCAMPlusPlus, GradCAMPlusPlus), (pgc.LayerCAM, LayerCAM)]


from _peer_models import quiet_peers  # noqa: E402,F401 (autouse)
from _peer_models import random_model as _model  # noqa: E402


def _x(seed=1, n=2, size=64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g)


def _close(ours, theirs, tol=TOL):
    ours = ours.detach().cpu().float() if isinstance(ours, torch.Tensor) else torch.from_numpy(ours)
    theirs = theirs.detach().cpu().float() if isinstance(theirs, torch.Tensor) else torch.from_numpy(theirs)
    assert ours.shape == theirs.shape
    err = (ours - theirs).abs().max().item()
    assert err < tol, err


def _contract(cls):
    defined = [m for m in ("channel_weights", "weighted_activations", "maps") if m in vars(cls)]
    assert len(defined) == 1, defined
    for owned in ("__call__", "context", "compute_weights"):
        assert owned not in vars(cls)


@pytest.mark.parametrize("cls", [FullGrad, FinerCAM, RefineCAM, XGradCAM, LayerCAM, GradCAMPlusPlus])
def test_the_method_contract(cls):
    _contract(cls)


# -- FullGrad ---------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_fullgrad_matches_pytorch_grad_cam(arch):
    model, x = _model(arch), _x()
    theirs = pgc.FullGrad(model, [])(x, [TheirTarget(3), TheirTarget(7)])
    model.zero_grad(set_to_none=True)       # theirs writes parameter gradients
    _close(FullGrad(model)(x, [3, 7]), theirs)
    if arch == "resnet18":
        _close(FcFullGrad(model, [])(x, [TheirTarget(3), TheirTarget(7)]), theirs)
    assert not any(p.grad is not None for p in model.parameters())


def test_fullgrad_predicted_class_batch_equals_singles_and_record():
    model, x = _model("resnet18"), _x(2)
    cam = FullGrad(model)
    maps = cam(x)
    assert len(cam.last.low_res) == len(cam.target_layers) == 20    # every BatchNorm2d
    assert cam.last.extra["input_term"].shape == (2, 64, 64)
    singles = torch.cat([cam(x[i:i + 1]) for i in range(2)])
    _close(maps, singles, 1e-5)
    assert maps.min() >= 0 and maps.max() <= 1


def test_fullgrad_bias_of_a_conv_enters_the_map():
    """A conv with a bias and nothing else: the layer term is |b_k ∂y/∂z_k| scaled."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 2, 3, padding=1)
    model = nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2)).eval()
    cam = FullGrad(model)
    x = torch.rand(1, 3, 6, 6)
    cam(x, 1)
    # ∂y/∂z_k is W[1,k]/36 everywhere: constant per channel, so each scaled term is 0
    assert torch.equal(cam.last.low_res[0], torch.zeros(1, 6, 6))


def test_fullgrad_errors_and_warnings():
    with pytest.raises(ValueError, match="bias"):
        FullGrad(nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.Flatten()))
    with pytest.raises(ValueError, match="running statistics"):
        FullGrad(nn.Sequential(nn.BatchNorm2d(3, track_running_stats=False), nn.Flatten()))
    model = _model("resnet18")
    with pytest.warns(UserWarning, match="ignores target_layers"):
        FullGrad(model, [model.layer4])
    with pytest.raises(ValueError, match="reshape_transform"):
        FcFullGrad(model, [], reshape_transform=lambda t: t)
    with pytest.raises(ValueError, match="eigen_smooth"):
        FcFullGrad(model, [])(_x(), None, eigen_smooth=True)
    with pytest.raises((ValueError, TypeError)):
        FullGrad(model)(torch.rand(3, 64, 64))


# -- Finer-CAM --------------------------------------------------------------------------

# (the front-end runs the native method: its parity covers the native class too)
@pytest.mark.parametrize("arch", ARCHS)
def test_finercam_matches_pytorch_grad_cam(arch):
    model, x = _model(arch), _x()
    layer = model.get_submodule(LAYER[arch])
    theirs = pgc.FinerCAM(model, [layer])(x)
    _close(FinerCAM(model, [layer])(x), theirs)
    theirs = pgc.FinerCAM(model, [layer])(x, target_idx=5, alpha=0.5, comparison_categories=[1, 4])
    _close(FcFiner(model, [layer])(x, target_idx=5, alpha=0.5, comparison_categories=[1, 4]), theirs)


@pytest.mark.parametrize("theirs_base,our_base", PAIRS[1:], ids=lambda c: getattr(c, "__name__", ""))
def test_finercam_other_bases_match_pytorch_grad_cam(theirs_base, our_base):
    model, x = _model("resnet18"), _x()
    theirs = pgc.FinerCAM(model, [model.layer4], base_method=theirs_base)(x, target_idx=2)
    _close(FinerCAM(model, [model.layer4], base_method=our_base)(x, 2), theirs)


def test_finercam_front_end_with_targets_is_the_base_method():
    model, x = _model("resnet18"), _x()
    targets = [TheirTarget(1), TheirTarget(2)]
    theirs = pgc.FinerCAM(model, [model.layer4])(x, targets)
    _close(FcFiner(model, [model.layer4])(x, targets), theirs)
    ours = FcFiner(model, [model.layer4])(x, eigen_smooth=True)
    assert ours.shape == (2, 64, 64) and ours.min() >= 0 and ours.max() <= 1


def test_finercam_closed_form_on_a_linear_head():
    """GAP + linear: with the TorchCAM score y_c − γ mean y_d, Grad-CAM's weights are
    (W_c − γ mean_d W_d) / (h·w)."""
    torch.manual_seed(0)
    lin = nn.Linear(5, 6)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), lin).eval()
    x = torch.rand(2, 3, 8, 8)
    cam = TorchCAMFinerCAM(model, "1", comparison_classes=[[1, 2], [3, 4]])
    cam(x, [0, 5])
    W = lin.weight.detach()
    expected = torch.stack([W[0] - 0.6 * W[[1, 2]].mean(0), W[5] - 0.6 * W[[3, 4]].mean(0)]) / 64
    torch.testing.assert_close(cam.last.weights[0], expected)
    assert cam.last.extra["comparison_classes"].tolist() == [[1, 2], [3, 4]]


def test_finercam_batch_equals_singles():
    model, x = _model("resnet18"), _x(3)
    cam = FinerCAM(model, "layer4", base_method=GradCAMPlusPlus)
    maps = cam(x, [4, 9])
    singles = torch.cat([cam(x[i:i + 1], [c]) for i, c in enumerate([4, 9])])
    _close(maps, singles, 1e-5)


def test_finercam_errors():
    model, x = _model("resnet18"), _x()
    with pytest.raises(ValueError, match="class indices"):
        FinerCAM(model, "layer4")(x, [lambda o: o[0], lambda o: o[1]])
    with pytest.raises(ValueError, match="ranks"):
        FinerCAM(model, "layer4", comparison_categories=[0, 1])
    with pytest.raises(ValueError, match="target class"):
        FinerCAM(model, "layer4", comparison_classes=[3, 4])(x, 3)
    with pytest.raises(ValueError, match="lie in"):
        FinerCAM(model, "layer4", comparison_classes=[3, 4000])(x, 1)
    with pytest.raises(ValueError, match="gradient method"):
        FinerCAM(model, "layer4", base_method=ScoreCAM)
    with pytest.raises(TypeError, match="base_method"):
        FinerCAM(model, "layer4", base_method=len)
    with pytest.raises(TypeError, match="mode"):         # TorchCAM's numerics: TorchCAMFinerCAM
        FinerCAM(model, "layer4", mode="grad-cam")
    with pytest.raises(TypeError, match="base_method"):
        FcFiner(model, [model.layer4], base_method=object)
    with pytest.raises(ValueError, match="gradient method"):
        FcFiner(model, [model.layer4], base_method=FcScore)(x)


# -- Refine-CAM -------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_refinecam_matches_pytorch_grad_cam(arch):
    model, x = _model(arch), _x()
    layers = [model.get_submodule(name) for name in LAYERS[arch]]
    targets = [TheirTarget(3), TheirTarget(8)]
    theirs = pgc.RefineCAM(model, layers)(x, targets)
    _close(RefineCAM(model, layers)(x, [3, 8]), theirs)
    _close(FcRefine(model, layers)(x, targets), theirs)


@pytest.mark.parametrize("theirs_base,ours", [(pgc.GradCAM, None), (pgc.LayerCAM, FcLayer)],
                         ids=["GradCAM", "LayerCAM"])
def test_refinecam_other_bases_match_pytorch_grad_cam(theirs_base, ours):
    model, x = _model("resnet18"), _x()
    layers = [model.layer3, model.layer4]
    theirs = pgc.RefineCAM(model, layers, base_method=theirs_base)(x, None)
    base = ours or theirs_base       # ours, or theirs mapped to ours by name
    _close(FcRefine(model, layers, base_method=base)(x), theirs)


def test_refinecam_batch_equals_singles():
    model, x = _model("resnet18"), _x(4)
    cam = TorchCAMRefineCAM(model, ["layer3", "layer4"])
    maps = cam(x, [2, 6])
    singles = torch.cat([cam(x[i:i + 1], [c]) for i, c in enumerate([2, 6])])
    _close(maps, singles, 1e-5)


def test_refinecam_errors():
    model = _model("resnet18")
    with pytest.raises(ValueError, match="target layers"):
        RefineCAM(model, None)
    with pytest.raises(ValueError, match="two target layers"):
        TorchCAMRefineCAM(model, ["layer4"])
    with pytest.raises(ValueError, match="gradient method"):
        RefineCAM(model, ["layer3", "layer4"], base_method=FullGrad)
    with pytest.raises(ValueError, match="eigen_smooth"):
        FcRefine(model, [model.layer3, model.layer4])(_x(), None, eigen_smooth=True)


# -- TorchCAM numerics ------------------------------------------------------------------

def _torchcam(extractor, model, x, classes, **kwargs):
    with extractor:
        out = model(x)
        return [c.detach() for c in extractor(classes, out, **kwargs)]


TC_PAIRS = [(tcm.XGradCAM, TorchCAMXGradCAM), (tcm.LayerCAM, TorchCAMLayerCAM),
            (tcm.GradCAMpp, TorchCAMGradCAMPlusPlus)]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("theirs_cls,our_cls", TC_PAIRS, ids=lambda c: c.__name__)
def test_torchcam_mode_matches_torchcam(arch, theirs_cls, our_cls):
    model, x = _model(arch), _x()
    theirs = _torchcam(theirs_cls(model, target_layer=LAYER[arch]), model, x, [3, 7])[0]
    cam = our_cls(model, LAYER[arch])
    maps = cam(x, [3, 7])
    _close(tcn.normalize(cam.last.low_res[0]), theirs)
    _close(maps, upsample(theirs, (64, 64)))
    if our_cls is TorchCAMGradCAMPlusPlus and arch == "resnet18":   # the native stays pytorch-grad-cam's
        default = GradCAMPlusPlus(model, LAYER[arch])
        default(x, [3, 7])
        assert (default.last.weights[0] - cam.last.weights[0]).abs().max() > 1e-6


def test_torchcam_layercam_fusion():
    model, x = _model("resnet18"), _x()
    names = ["layer3", "layer4"]
    with tcm.LayerCAM(model, target_layer=names) as extractor:
        cams = extractor([1, 2], model(x))
        theirs = extractor.fuse_cams(cams)
    cam = TorchCAMLayerCAM(model, names)
    cam(x, [1, 2])
    ours = tcn.fuse_cams([tcn.normalize(m) for m in cam.last.low_res], layercam=True)
    _close(ours, theirs)


@pytest.mark.parametrize("arch,theirs_base,our_base",
                         [("resnet18", tcm.GradCAM, GradCAM), ("vgg16", tcm.GradCAM, GradCAM),
                          ("resnet18", tcm.GradCAMpp, GradCAMPlusPlus),
                          ("resnet18", tcm.LayerCAM, LayerCAM)], ids=str)
def test_torchcam_finercam(arch, theirs_base, our_base):
    model, x = _model(arch), _x()
    theirs = _torchcam(tcm.FinerCAM(model, LAYER[arch], base_method=theirs_base), model, x, [3, 7])[0]
    cam = TorchCAMFinerCAM(model, LAYER[arch], base_method=our_base)
    maps = cam(x, [3, 7])
    _close(tcn.normalize(cam.last.low_res[0]), theirs)
    _close(maps, upsample(theirs, (64, 64)))
    if our_base is not GradCAM:
        return
    refs = [[10, 11], [12, 13]]
    theirs = _torchcam(tcm.FinerCAM(model, LAYER[arch], base_method=theirs_base, gamma=0.3),
                       model, x, [3, 7], comparison_idx=refs)[0]
    cam = TorchCAMFinerCAM(model, LAYER[arch], base_method=our_base, alpha=0.3,
                           comparison_classes=refs)
    cam(x, [3, 7])
    _close(tcn.normalize(cam.last.low_res[0]), theirs)


@pytest.mark.parametrize("arch", ARCHS)
def test_torchcam_refinecam(arch):
    model, x = _model(arch), _x()
    names = LAYERS[arch]
    theirs = _torchcam(tcm.RefineCAM(model, names), model, x, [3, 7])[0]
    cam = TorchCAMRefineCAM(model, names)
    maps = cam(x, [3, 7])
    _close(cam.last.extra["refined"], theirs)
    _close(maps, upsample(theirs, (64, 64)))
    if arch != "resnet18":
        return
    theirs = _torchcam(tcm.RefineCAM(model, names, base_method=tcm.LayerCAM), model, x, [3, 7])[0]
    cam = TorchCAMRefineCAM(model, names, base_method=LayerCAM)
    cam(x, [3, 7])
    _close(cam.last.extra["refined"], theirs)


def test_no_mode_keyword_on_native_methods():
    """TorchCAM's numerics are fastcam.compat.numerics' classes, not a native ``mode``."""
    model = _model("resnet18")
    for cls in (XGradCAM, LayerCAM, GradCAMPlusPlus, RefineCAM):
        with pytest.raises(TypeError, match="mode"):
            cls(model, ["layer3", "layer4"], mode="TorchCAM")
    assert issubclass(FullGrad, BaseCAM)
