"""SESS natively: parity with grad-cam 1.5.7's SESS (ResNet-18 / VGG16 random init, batch
2, mean and max fusion, pre-filtering, theta, no smoothing), the window helpers, the
OpenCV blur, batch == singles, bad input."""
import functools
import warnings

import numpy as np
import pytest
import torch
import torchvision

from fastcam.compat.pytorch_grad_cam.xgrad_cam import XGradCAM
from fastcam.compat.pytorch_grad_cam.sess import SESS, gaussian_blur, sliding_window, window_starts
from fastcam.compat.pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget


@functools.lru_cache(maxsize=None)
def _model(arch):
    torch.manual_seed(0)
    return getattr(torchvision.models, arch)().eval()


def _layer(arch, model):
    return model.features[29] if arch == "vgg16" else model.layer4[-1]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


CONFIGS = {"mean": dict(num_scales=2),
           "max-overlap": dict(scales=[48, 56], pool="max", step_size=24),
           "filtered": dict(scales=[48, 60], pre_filter_ratio=0.4, theta=0.2, smooth=False)}


@pytest.mark.parametrize("arch,config", [("resnet18", "mean"), ("resnet18", "max-overlap"),
                                         ("resnet18", "filtered"), ("vgg16", "mean")])
def test_parity(arch, config):
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import GradCAM as TheirGradCAM
    from pytorch_grad_cam.sess import SESS as Theirs
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget as TheirTarget
    model = _model(arch)
    torch.manual_seed(1)
    x = torch.randn(2, 3, 48, 64)
    kw = CONFIGS[config]
    targets = None if config == "mean" else [TheirTarget(3), TheirTarget(7)]
    want = Theirs(model, [_layer(arch, model)], base_method=TheirGradCAM, **kw)(x, targets)
    got = SESS(model, [_layer(arch, model)], batch_size=5, **kw)(x, targets)
    assert got.dtype == np.float32 and got.shape == want.shape == (2, 48, 64)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_batch_equals_singles_and_other_base():
    model = _model("resnet18")
    torch.manual_seed(2)
    x = torch.randn(2, 3, 40, 40)
    targets = [ClassifierOutputTarget(1), ClassifierOutputTarget(2)]
    sess = SESS(model, [model.layer4[-1]], base_method=XGradCAM, num_scales=2, batch_size=3)
    both = sess(x, targets)
    singles = np.concatenate([sess(x[i:i + 1], targets[i:i + 1]) for i in range(2)])
    np.testing.assert_allclose(both, singles, atol=1e-5)
    assert both.min() == 0 and abs(both.max() - 1) < 1e-5


def test_windows_and_blur():
    assert window_starts(10, 4, 4) == [0, 4, 6]
    assert window_starts(8, 4, 4) == [0, 4]
    assert window_starts(3, 4, 4) == [0]
    assert sliding_window(6, 10, 4, 4) == [(0, 0), (4, 0), (6, 0), (0, 2), (4, 2), (6, 2)]
    cv2 = pytest.importorskip("cv2")
    m = np.random.default_rng(0).random((20, 17)).astype(np.float32)
    np.testing.assert_allclose(gaussian_blur(torch.from_numpy(m)[None])[0].numpy(),
                               cv2.GaussianBlur(m, (11, 11), 5.0, 0), atol=1e-6)


def test_bad_input():
    model = _model("resnet18")
    layers = [model.layer4[-1]]
    with pytest.raises(ValueError, match="pool"):
        SESS(model, layers, pool="median")
    with pytest.raises(ValueError, match="pre_filter_ratio"):
        SESS(model, layers, pre_filter_ratio=1.0)
    with pytest.raises(ValueError, match="num_scales"):
        SESS(model, layers, num_scales=0)
    with pytest.raises(ValueError, match="batch_size"):
        SESS(model, layers, batch_size=0)
    sess = SESS(model, layers, scales=[24], window_size=32)
    with pytest.raises(ValueError, match="at least the window size"):
        sess(torch.randn(1, 3, 40, 40))
    with pytest.raises(ValueError, match="one target per image"):
        SESS(model, layers, num_scales=1)(torch.randn(2, 3, 40, 40), [ClassifierOutputTarget(1)])
    with pytest.raises(ValueError):
        SESS(model, layers)(torch.randn(3, 40, 40))
