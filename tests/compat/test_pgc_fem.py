"""FEM (Fuad et al. 2020): fastcam's native method and its pytorch-grad-cam front-end
against grad-cam 1.5.7 (ResNet-18 / VGG16 random init, batch 2), the k-sigma weights
by hand, batch == singles, bad input."""
import functools

import numpy as np
import pytest
import torch
import torchvision

from fastcam.compat.pytorch_grad_cam.fem import FEM as FcFEM
from fastcam.methods.base import minmax
from fastcam.methods.fem import FEM

B, SIZE = 2, 64


@functools.lru_cache(maxsize=None)
def _model(arch):
    torch.manual_seed(0)
    return getattr(torchvision.models, arch)().eval()


def _layer(arch, model):
    return model.features[-1] if arch == "vgg16" else model.layer4[-1]


@pytest.mark.parametrize("k", [2, 1])
@pytest.mark.parametrize("arch", ["resnet18", "vgg16"])
def test_parity_with_grad_cam(arch, k):
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.fem import FEM as TheirFEM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    model = _model(arch)
    layer = _layer(arch, model)
    torch.manual_seed(1)
    x = torch.randn(B, 3, SIZE, SIZE) if arch == "resnet18" else torch.randn(B, 3, 96, 96)
    targets = [ClassifierOutputTarget(3), ClassifierOutputTarget(7)]
    with TheirFEM(model, [layer], k=k) as cam:
        want = cam(x, targets)
    with FcFEM(model, [layer], k=k) as cam:
        got = cam(x, targets)
        assert cam.outputs.shape == (B, 1000)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)
    with FcFEM(model, [layer], k=k) as cam:      # predicted classes; FEM ignores the target anyway
        np.testing.assert_allclose(cam(x), want, atol=1e-4)


def test_weights_by_hand_and_singles():
    model = _model("resnet18")
    torch.manual_seed(2)
    x = torch.randn(3, 3, SIZE, SIZE)
    method = FEM(model, "layer4", k=1.5)
    maps = method(x)
    A = method.last.activations[0]
    flat = A.flatten(2).double()
    th = flat.mean(-1, keepdim=True) + 1.5 * flat.std(-1, keepdim=True, unbiased=False)
    w = (flat > th).double().mean(-1)
    torch.testing.assert_close(method.last.weights[0].double(), w)
    up = torch.nn.functional.interpolate(torch.relu(torch.einsum("bk,bkhw->bhw", w, A.double()))[:, None],
                                         size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(maps.double(), minmax(up), atol=1e-5, rtol=0)
    singles = torch.cat([method(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(maps, singles, atol=1e-5, rtol=0)


def test_bad_input():
    model = _model("resnet18")
    with pytest.raises(TypeError):
        FEM(model, "layer4", k="2")
    with pytest.raises(ValueError):
        FcFEM(model, [])
    with pytest.raises(ValueError):
        FEM(model, "layer4")(torch.randn(3, SIZE, SIZE))
