"""CAM, Grad-CAM and Grad-CAM++: known identities, parity with pytorch-grad-cam,
the real model, and the API's error handling."""
import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import fastcam


def _resnet18():
    return torchvision.models.resnet18(num_classes=10).eval()


class TinyNet(nn.Module):
    """conv -> ReLU -> conv (target) -> GAP -> fc: a GAP+fc head."""

    def __init__(self, classes=5):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 6, 3, stride=2, padding=1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


def test_cam_equals_gradcam_on_gap_fc_head():
    # Grad-CAM's weights on GAP+fc are W[c,k]/(h*w): a positive multiple of CAM's.
    torch.manual_seed(1)
    model = _resnet18()
    x = torch.randn(3, 3, 128, 128)
    cam = fastcam.explain(model, x, "cam", "layer4", [1, 2, 3])
    grad = fastcam.explain(model, x, "gradcam", "layer4", [1, 2, 3])
    assert (cam.amax(dim=(1, 2)) == 1).sum() >= 2     # non-trivial maps
    torch.testing.assert_close(cam, grad, atol=1e-5, rtol=1e-4)
    with fastcam.CAM(model, "layer4") as c:
        c(x, [1, 2, 3])
        hw = c.last.activations[0].shape[-1] * c.last.activations[0].shape[-2]
    with fastcam.GradCAM(model, "layer4") as g:
        g(x, [1, 2, 3])
    torch.testing.assert_close(g.last.weights[0] * hw, c.last.weights[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("arch,layer", [("resnet50", "layer4"), ("vgg16", "features.29")])
@pytest.mark.parametrize("method", ["GradCAM", "GradCAMPlusPlus"])
def test_matches_pytorch_grad_cam(arch, layer, method):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)().eval()
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():   # the predicted classes give non-trivial maps at random init
        targets = model(x).argmax(1).tolist()
    with getattr(pgc, method)(model, [model.get_submodule(layer)]) as theirs:
        expected = theirs(x, [ClassifierOutputTarget(t) for t in targets])
    with getattr(fastcam, method)(model, layer) as ours:
        got = ours(x, targets)
    assert got.dtype == torch.float32 and got.shape == (3, 224, 224)
    assert (got.amax(dim=(1, 2)) > 0.99).sum() >= 2        # real maps, not constants
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)


def test_gradcam_closed_form_on_linear_tail():
    model = TinyNet().eval()
    x = torch.randn(2, 3, 16, 16)
    with fastcam.GradCAM(model, "features.2") as cam:
        maps = cam(x, [0, 4])
        A = cam.last.activations[0]
        w_expected = model.fc.weight[[0, 4]] / (A.shape[-1] * A.shape[-2])
        torch.testing.assert_close(cam.last.weights[0], w_expected.detach())
        low = torch.relu(torch.einsum("bk,bkhw->bhw", w_expected.detach(), A))
        torch.testing.assert_close(cam.last.low_res[0], low)
    up = torch.nn.functional.interpolate(low[:, None], size=(16, 16), mode="bilinear")[:, 0]
    lo, hi = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    torch.testing.assert_close(maps, (up - lo) / (hi - lo))


def test_batch_equals_single_images():
    model = _resnet18()
    x = torch.randn(3, 3, 96, 96)
    for method in ("cam", "gradcam", "gradcam++"):
        batch = fastcam.explain(model, x, method, "layer4", [0, 5, 9])
        singles = torch.cat([fastcam.explain(model, x[i:i + 1], method, "layer4", [t])
                             for i, t in enumerate([0, 5, 9])])
        torch.testing.assert_close(batch, singles, atol=1e-5, rtol=1e-4)


def test_default_layer_targets_and_record():
    model = _resnet18()
    x = torch.randn(2, 3, 64, 64)
    with fastcam.GradCAM(model) as cam:
        maps = cam(x)
        assert cam.target_layers == [model.layer4]
        assert torch.equal(cam.last.targets, cam.last.logits.argmax(1))
        assert cam.last.low_res[0].shape == (2, 2, 2)
        assert cam.last.weights[0].shape == (2, 512)
    assert maps.shape == (2, 64, 64)
    # an int target, a tensor, and per-sample callables all give the same maps
    a = fastcam.explain(model, x, "gradcam", targets=4)
    b = fastcam.explain(model, x, "gradcam", targets=torch.tensor([4, 4]))
    c = fastcam.explain(model, x, "gradcam", targets=[lambda row: row[4]] * 2)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)


def test_multiple_layers_average_and_rescale():
    model = _resnet18()
    x = torch.randn(2, 3, 64, 64)
    m3 = fastcam.explain(model, x, "gradcam", "layer3", [1, 2])
    m4 = fastcam.explain(model, x, "gradcam", "layer4", [1, 2])
    both = fastcam.explain(model, x, "gradcam", ["layer3", "layer4"], [1, 2])
    mean = (m3 + m4) / 2
    lo, hi = mean.amin((1, 2), keepdim=True), mean.amax((1, 2), keepdim=True)
    torch.testing.assert_close(both, (mean - lo) / (hi - lo))


def test_frozen_model_and_no_grad_context_still_work():
    model = _resnet18()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = fastcam.explain(model, x, "gradcam++", "layer4", 3)
    assert maps.amax() == 1


def test_inplace_relu_after_target_layer_does_not_change_capture():
    model = torchvision.models.vgg11(num_classes=4).eval()   # features.16 conv, then ReLU(inplace)
    x = torch.randn(1, 3, 64, 64)
    with fastcam.GradCAM(model, "features.16") as cam:
        cam(x, 1)
        A = cam.last.activations[0]
    assert (A < 0).any()            # the pre-ReLU values were kept


def test_hooks_removed_after_call_and_after_error():
    model = _resnet18()
    x = torch.randn(2, 3, 64, 64)
    with fastcam.GradCAM(model, "layer4") as cam:
        cam(x)
        with pytest.raises(ValueError, match="2 targets|got 3 targets"):
            cam(x, [1, 2, 3])
    assert all(not m._forward_hooks for m in model.modules())


def test_errors_propagate_from_with_block():
    model = _resnet18()
    with pytest.raises(KeyError):
        with fastcam.GradCAM(model, "layer4"):
            raise KeyError("user error")


@pytest.mark.parametrize("bad,error,match", [
    (torch.randn(3, 64, 64), ValueError, "4-D"),
    (torch.randint(0, 255, (1, 3, 64, 64)), TypeError, "floating point .* or uint8"),
    (torch.full((1, 3, 64, 64), float("nan")), ValueError, "NaN"),
    (torch.full((1, 3, 64, 64), float("inf")), ValueError, "NaN or infinite"),
])
def test_bad_inputs(bad, error, match):
    with pytest.raises(error, match=match):
        fastcam.explain(_resnet18(), bad, "gradcam")


def test_bad_targets_and_layers():
    model = _resnet18()
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(ValueError, match="got 3 targets for a batch of 2"):
        fastcam.explain(model, x, "gradcam", targets=[1, 2, 3])
    with pytest.raises(ValueError, match="got 1 targets for a batch of 2"):
        fastcam.explain(model, x, "gradcam", targets=torch.tensor([1]))
    with pytest.raises(ValueError, match="out of range"):
        fastcam.explain(model, x, "gradcam", targets=10)
    with pytest.raises(ValueError, match="out of range"):
        fastcam.explain(model, x, "gradcam", targets=[-1, 0])
    with pytest.raises(ValueError, match="no layer named 'layer5'.*layer4"):
        fastcam.GradCAM(model, "layer5")
    with pytest.raises(ValueError, match="no spatial output"):
        fastcam.explain(model, x, "gradcam", "fc")
    with pytest.raises(ValueError, match="unknown method"):
        fastcam.explain(model, x, "gradcam+++")
    with pytest.raises(ValueError, match="class-index targets"):
        fastcam.explain(model, x, "cam", targets=[lambda r: r[0]] * 2)


def test_model_without_spatial_layer():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    with pytest.raises(ValueError, match="no layer with a spatial"):
        fastcam.explain(model, torch.randn(1, 3, 8, 8), "gradcam")


def test_maps_stay_on_input_device_and_dtype_float32():
    model = _resnet18().double()
    maps = fastcam.explain(model, torch.randn(1, 3, 32, 32, dtype=torch.float64), "gradcam")
    assert maps.dtype == torch.float32 and maps.device == torch.device("cpu")


def test_real_model_peak_on_the_cat():
    from fastcam.data import load_photos

    model = fastcam.models.efficientnet_lite0(pretrained=True)
    x, _ = load_photos(["chelsea"])
    for method in ("cam", "gradcam", "gradcam++"):
        maps = fastcam.explain(model, x, method, normalize=model.normalization)
        assert maps.shape == (1, 224, 224)
        # chelsea at 224x224 after resize-256/crop-224: the cat's head and body fill
        # the centre-left; the right edge and the top-right corner are background.
        iy, ix = divmod(int(maps[0].argmax()), 224)
        assert 40 <= iy <= 200 and 20 <= ix <= 170, (method, iy, ix)
        assert maps[0, :, 200:].mean() < maps[0, 40:200, 20:170].mean()
