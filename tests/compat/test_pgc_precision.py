"""The drop-in front-end's ``precision`` keyword: passed to the fastcam method,
checked before any work, and the bf16 maps against pytorch-grad-cam's fp32 maps
(grad-cam 1.5.7) on the bundled pretrained model and a real photo."""
import warnings

import numpy as np
import pytest
import torch

import fastcam
import fastcam.engine

pgc = pytest.importorskip("pytorch_grad_cam")

import fastcam  # noqa: E402
import fastcam.compat.pytorch_grad_cam as fc  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from fastcam.data import load_photos  # noqa: E402
from fastcam.engine import check_precision  # noqa: E402

SIZE = 96


def _bf16_native() -> bool:
    return fastcam.engine.cpu_supports(torch.bfloat16)   # what check_precision asks on a CPU


needs_bf16 = pytest.mark.skipif(not _bf16_native(), reason="this CPU has no native bf16")


@pytest.fixture(scope="module")
def model():
    return fastcam.models.efficientnet_lite0(pretrained=True).eval()


@pytest.fixture(scope="module")
def photo():
    x, _ = load_photos(size=SIZE)
    return x[:1]            # chelsea, a tabby cat


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                        torch.nn.Linear(8, 4))

    def forward(self, x):
        return self.head(self.features(x))


ALL = ["GradCAM", "GradCAMPlusPlus", "ScoreCAM", "LiftCAM", "ShapCAM", "OptiCAM", "ADVISE"]


def _front_end(name, model, layers, **kw):
    return getattr(fc, name)(model, layers, **kw)


#: a half precision this CPU runs natively (check_precision refuses the others)
HALF = next(((name, dtype) for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16))
             if fastcam.engine.cpu_supports(dtype)), None)


@pytest.mark.parametrize("name", ALL)
def test_default_is_fp32_and_the_keyword_reaches_the_method(name):
    model = _Tiny().eval()
    with getattr(fc, name)(model, [model.features[-1]]) as cam:
        assert cam.precision == "fp32" and cam.method.engine.precision == "fp32"
    if HALF is None:
        pytest.skip("this CPU runs neither fp16 nor bf16 natively")
    half, dtype = HALF
    with _front_end(name, model, [model.features[-1]], precision=half) as cam:
        assert cam.precision == half and cam.method.engine.precision == half
        assert cam.method.engine.autocast_dtype == dtype


def test_a_bad_name_is_an_error():
    model = _Tiny().eval()
    with pytest.raises(ValueError, match="precision must be one of"):
        fc.GradCAM(model, [model.features[-1]], precision="fp64")


def test_a_precision_the_cpu_cannot_run_is_an_error_at_construction(monkeypatch):
    # as on a CPU without AVX512-BF16/AMX: oneDNN reports no bf16 support
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    model = _Tiny().eval()
    with pytest.raises(ValueError, match="cannot run on cpu"):
        fc.GradCAM(model, [model.features[-1]], precision="bf16")
    with fc.GradCAM(model, [model.features[-1]]) as cam:           # fp32 still runs
        assert cam(torch.rand(1, 3, 8, 8)).shape == (1, 8, 8)


def _pearson(a, b):
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@needs_bf16
@pytest.mark.parametrize("name", ["GradCAM", "GradCAMPlusPlus"])
def test_bf16_maps_against_pytorch_grad_cams_fp32_maps(model, photo, name):
    # the front-end's inputs are the model's: normalise the [0, 1] photo as the model expects
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in model.normalization)
    x = (photo - mean) / std
    layers = [model._head_act]
    targets = [ClassifierOutputTarget(281)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with getattr(pgc, name)(model, layers) as cam:
            theirs = cam(x, targets)
    with getattr(fc, name)(model, layers, precision="bf16") as cam:
        ours = cam(x, targets)
        outputs = cam.outputs
    assert ours.dtype == np.float32 and ours.min() >= 0 and ours.max() <= 1
    assert outputs.dtype == torch.float32 and int(outputs.argmax()) == int(model(x).argmax())
    r = _pearson(ours[0], theirs[0])
    assert r >= 0.99, r
    assert np.abs(ours - theirs).max() > 1e-6        # bf16 really ran: not the fp32 map
