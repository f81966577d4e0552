"""Guided backpropagation natively: parity with grad-cam 1.5.7 (ResNet-18, VGG16 random
init), the user's model unchanged (also after an exception), batch == singles, the guided
ReLU function by hand, bad input."""
import copy
import functools
import hashlib

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from fastcam.compat.pytorch_grad_cam.guided_backprop import (GuidedBackpropReLU, GuidedBackpropReLUasModule,
                                                             GuidedBackpropReLUModel)

SIZE = 64


@functools.lru_cache(maxsize=None)
def _model(arch):
    torch.manual_seed(0)
    return getattr(torchvision.models, arch)().eval()


def _digest(t: torch.Tensor) -> str:
    """sha256 of a tensor's bytes, read in place (VGG16's weights are 553 MB: a
    snapshot of clones would double them in the suite's peak memory)."""
    return hashlib.sha256(memoryview(t.detach().contiguous().numpy()).cast("B")).hexdigest()


def _snapshot(model):
    return ([(n, type(m), m, getattr(m, "inplace", None)) for n, m in model.named_modules()],
            {k: (v.dtype, tuple(v.shape), _digest(v)) for k, v in model.state_dict().items()})


def _assert_unchanged(model, snap):
    mods, state = snap
    assert [(n, type(m), m, getattr(m, "inplace", None)) for n, m in model.named_modules()] == mods
    for k, v in model.state_dict().items():
        assert (v.dtype, tuple(v.shape), _digest(v)) == state[k], k
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("arch", ["resnet18", "vgg16"])
def test_parity_and_model_unchanged(arch):
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.guided_backprop import GuidedBackpropReLUModel as Theirs
    model = _model(arch)
    torch.manual_seed(1)
    size = SIZE if arch == "resnet18" else 32
    x = torch.randn(2, 3, size, size)
    snap = _snapshot(model)
    ours = GuidedBackpropReLUModel(model)
    got = ours(x, 5)
    got_pred = ours(x)
    _assert_unchanged(model, snap)
    assert not x.requires_grad and x.grad is None
    assert got.dtype == np.float32 and got.shape == (size, size, 3)
    # their copy frozen: grad-cam backpropagates to the input only, and its parameters'
    # gradients would be another copy of the weights
    theirs = Theirs(copy.deepcopy(model).requires_grad_(False), "cpu")
    want = theirs(x.clone(), 5)
    want_pred = theirs(x[:1].clone())     # grad-cam's argmax is over the whole flattened batch output
    scale = np.abs(want).max()
    assert scale > 0
    np.testing.assert_allclose(got / scale, want / scale, atol=1e-4)
    np.testing.assert_allclose(got_pred, want_pred, atol=1e-4 * np.abs(want_pred).max())
    # the batch at once equals image by image
    batch = ours.attributions(x, [5, 9])
    torch.testing.assert_close(batch[0].permute(1, 2, 0).numpy(), got, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(batch[1:], ours.attributions(x[1:], 9), atol=1e-6, rtol=1e-5)


def test_guided_rule_by_hand():
    x = torch.tensor([-1.0, 2.0, 3.0, 0.5], requires_grad=True)
    y = GuidedBackpropReLU.apply(x)
    torch.testing.assert_close(y, torch.tensor([0.0, 2.0, 3.0, 0.5]))
    y.backward(torch.tensor([1.0, -1.0, 2.0, 0.0]))
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 0.0, 2.0, 0.0]))
    # a toy net: guided gradient == plain gradient with negative ReLU gradients dropped
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    guided = nn.Sequential(net[0], GuidedBackpropReLUasModule(), net[2], GuidedBackpropReLUasModule(), net[4])
    inp = torch.randn(2, 4, requires_grad=True)
    guided(inp)[:, 1].sum().backward()
    ours = GuidedBackpropReLUModel(net)
    # a 4-D input is required by the image API: use attributions through a reshaping wrapper
    wrap = nn.Sequential(nn.Flatten(), net)
    got = GuidedBackpropReLUModel(wrap).attributions(inp.detach().reshape(2, 4, 1, 1), 1)
    torch.testing.assert_close(got.reshape(2, 4), inp.grad)
    assert ours.model is net


def test_model_restored_after_error():
    model = _model("resnet18")
    snap = _snapshot(model)
    ours = GuidedBackpropReLUModel(model)
    x = torch.randn(1, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="outside"):
        ours(x, 5000)
    _assert_unchanged(model, snap)

    class Boom(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            self.inner(x)
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        GuidedBackpropReLUModel(Boom(model))(x)
    _assert_unchanged(model, snap)


def test_bad_input():
    ours = GuidedBackpropReLUModel(_model("resnet18"))
    with pytest.raises(ValueError):
        ours(torch.randn(3, SIZE, SIZE))
    with pytest.raises(TypeError):
        ours(torch.randn(1, 3, SIZE, SIZE), 2.5)
    with pytest.raises(ValueError, match="target categories"):
        ours.attributions(torch.randn(2, 3, SIZE, SIZE), [1, 2, 3])
    with pytest.raises(TypeError):
        GuidedBackpropReLUModel("resnet")
