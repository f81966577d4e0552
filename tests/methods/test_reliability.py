"""Probes a demanding new user ran: no silent wrong maps, no leaks, no side effects
on the user's model, clear errors. Each test failed before its fix."""
import gc
import weakref

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

import fastcam

ALL = ["cam", "gradcam", "gradcam++", "scorecam", "liftcam", "shapcam", "opticam", "advise"]
FAST = {"opticam": {"max_iter": 3}, "shapcam": {"permutations": 2}, "scorecam": {"batch_size": 4}}


def _net(bn: bool = True) -> nn.Module:
    torch.manual_seed(0)
    norm = nn.BatchNorm2d(8) if bn else nn.Identity()
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), norm, nn.ReLU(),
                         nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5)).eval()


def _explain(model, x, method, layer="3", **kw):
    return fastcam.explain(model, x, method=method, target_layers=layer, **{**FAST.get(method, {}), **kw})


# -- 1. silent wrong maps -------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_opticam_optimises_in_fp32_for_a_half_precision_model(dtype):
    model = _net(bn=False).to(dtype)
    x = torch.rand(2, 3, 12, 12).to(dtype)
    cam = fastcam.OptiCAM(model, "3", max_iter=5, stop=None)
    maps = cam(x, targets=[0, 1])
    e = cam.last.extra
    assert e["u"].dtype == torch.float32 and bool(torch.isfinite(e["u"]).all())
    assert bool((e["iterations"] == 5).all())
    assert not torch.equal(e["u"], torch.ones_like(e["u"]))        # Adam moved u
    assert maps.dtype == torch.float32 and float(maps.amax()) == 1.0


@pytest.mark.parametrize("method", ALL)
def test_a_model_with_nan_output_is_a_clear_error(method):
    model = _net()
    model[-1].weight.data[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        _explain(model, torch.rand(2, 3, 16, 16), method, targets=[1, 2])


@pytest.mark.parametrize("method", ["gradcam", "scorecam", "liftcam"])
def test_a_model_with_nan_activation_is_a_clear_error(method):
    model = _net()
    model[0].bias.data[0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        _explain(model, torch.rand(2, 3, 16, 16), method, layer="4", targets=[1, 2])


@pytest.mark.parametrize("method", ALL)
def test_a_layer_with_a_1x1_output_is_an_error_that_suggests_an_earlier_layer(method):
    model = torchvision.models.resnet18(num_classes=10).eval()
    with pytest.raises(ValueError, match="1×1 output.*earlier layer"):
        _explain(model, torch.rand(1, 3, 32, 32), method, layer="layer4", targets=[3])


@pytest.mark.parametrize("options", [{"lr": float("nan")}, {"lr": float("inf")}, {"lr": 0},
                                     {"max_iter": -1}, {"max_iter": 2.5}])
def test_opticam_rejects_bad_numeric_options(options):
    with pytest.raises(ValueError):
        fastcam.OptiCAM(_net(), "3", **options)


@pytest.mark.parametrize("method", ["gradcam", "opticam", "scorecam"])
@pytest.mark.parametrize("normalize", [((float("nan"),), (1.0,)), ((0.5,), (float("inf"),))])
def test_non_finite_normalisation_is_rejected(method, normalize):
    with pytest.raises(ValueError, match="finite"):
        _explain(_net(), torch.rand(1, 3, 16, 16), method, normalize=normalize)


class _Scaled(nn.Module):
    """A Python attribute read in forward: torch.fx bakes it into the trace."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)
        self.t = 1.0

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)) * self.t)


@pytest.mark.parametrize("cls", [fastcam.LiftCAM, fastcam.ShapCAM])
def test_split_methods_follow_a_changed_python_attribute(cls):
    model = _Scaled().eval()
    x = torch.rand(2, 3, 16, 16)
    cam = cls(model, "conv")
    cam(x, targets=[0, 1])
    model.t = 0.01
    cam(x, targets=[0, 1])
    torch.testing.assert_close(cam.last.logits, model(x).detach())


# -- 2. no leak -------------------------------------------------------------------------

@pytest.mark.parametrize("method", ALL)
def test_no_reference_cycle_keeps_the_model_alive(method):
    def run():
        model = _net()
        _explain(model, torch.rand(1, 3, 16, 16), method, targets=[1])
        return weakref.ref(model)

    gc.collect()
    gc.disable()
    try:
        ref = run()
        assert ref() is None, f"{method} keeps the model alive until the next garbage collection"
    finally:
        gc.enable()


# -- 3. no side effects on the model ------------------------------------------------------

@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("method", ALL)
def test_no_method_changes_the_models_state(method, train):
    model = _net().train(train)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.requires_grad for p in model.parameters()]
    with pytest.warns(UserWarning, match="training mode") if train else _nothing():
        _explain(model, torch.rand(2, 3, 16, 16), method, layer=None, targets=[1, 2])
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), f"{method} changed {k}"
    assert model.training == train
    assert [p.requires_grad for p in model.parameters()] == grads
    assert all(p.grad is None for p in model.parameters())


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- 4. half-precision models ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("method", ["scorecam", "advise"])
def test_half_precision_models_give_float32_maps(method, dtype):
    model = _net(bn=False).to(dtype)
    x = torch.rand(2, 3, 16, 16).to(dtype)
    maps = _explain(model, x, method, targets=[0, 1])
    assert maps.dtype == torch.float32 and maps.shape == (2, 16, 16)
    assert bool(torch.isfinite(maps).all()) and float(maps.amin()) >= 0 and float(maps.amax()) <= 1


# -- 5. clear errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "opticam", "advise", "liftcam"])
def test_methods_work_under_the_callers_inference_mode(method):
    model = _net()
    x = torch.rand(2, 3, 16, 16)
    expected = _explain(model, x, method, targets=[1, 2])
    with torch.inference_mode():
        inside = _explain(model, x, method, targets=[1, 2])
        x_inf = x.clone()
    made_inside = _explain(model, x_inf, method, targets=[1, 2])
    torch.testing.assert_close(inside, expected)
    torch.testing.assert_close(made_inside, expected)


def test_numpy_integer_targets_are_accepted_and_floats_rejected():
    model, x = _net(), torch.rand(2, 3, 16, 16)
    ref = _explain(model, x, "gradcam", targets=[1, 2])
    torch.testing.assert_close(_explain(model, x, "gradcam", targets=np.array([1, 2])), ref)
    torch.testing.assert_close(_explain(model, x, "gradcam", targets=[np.int64(1), np.int32(2)]),
                               ref)
    one = _explain(model, x, "gradcam", targets=1)
    torch.testing.assert_close(_explain(model, x, "gradcam", targets=np.int64(1)), one)
    for bad in (1.0, [1.0, 2.0], np.array([1.0, 2.0]), torch.tensor([1.0, 2.0])):
        with pytest.raises((TypeError, ValueError), match="int|integer"):
            _explain(model, x, "gradcam", targets=bad)


def test_a_meta_device_input_is_a_clear_error():
    with pytest.raises(ValueError, match="meta device"):
        _explain(_net(), torch.empty(1, 3, 8, 8, device="meta"), "gradcam")
