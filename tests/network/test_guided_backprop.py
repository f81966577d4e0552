"""fastcam.network.guided_backprop natively: the guided rule against a hand-written guided
network, batched == per image, the normalize chain rule, the model left unchanged (also
after an error), clear errors."""
import pytest
import torch
from torch import nn

from fastcam.engine import Engine
from fastcam.network.guided_backprop import guided_backprop, guided_relus


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * ((x > 0) & (g > 0)).to(g.dtype)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(6, 6, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 5)).eval()


def _by_hand(model, x, classes):
    x = x.clone().requires_grad_(True)
    h = x
    for m in model:
        h = _GuidedReLU.apply(h) if isinstance(m, nn.ReLU) else m(h)
    return torch.autograd.grad(h.gather(1, torch.as_tensor(classes)[:, None]).sum(), x)[0]


def test_guided_rule_and_batch():
    model = _model()
    x = torch.randn(3, 3, 10, 10)
    got = guided_backprop(Engine(model), x, [1, 4, 2])
    torch.testing.assert_close(got, _by_hand(model, x, [1, 4, 2]))
    singles = torch.cat([guided_backprop(Engine(model), x[i:i + 1], [[1, 4, 2][i]]) for i in range(3)])
    torch.testing.assert_close(got, singles, atol=1e-6, rtol=1e-5)
    predicted = model(x).argmax(1)
    torch.testing.assert_close(guided_backprop(Engine(model), x), guided_backprop(Engine(model), x, predicted))
    torch.testing.assert_close(guided_backprop(Engine(model), x, lambda out: out.argmin(1)),
                               guided_backprop(Engine(model), x, model(x).argmin(1)))
    assert all(p.grad is None for p in model.parameters()) and not x.requires_grad
    assert all(not m._forward_hooks for m in model.modules())


def test_normalize_chain_rule():
    model = _model()
    x = torch.rand(2, 3, 10, 10)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.3, 0.5)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    got = guided_backprop(Engine(model), x, [1, 2], normalize=(mean, std))
    want = guided_backprop(Engine(model), (x - m) / s, [1, 2]) / s
    torch.testing.assert_close(got, want)


def test_hooks_removed_after_error():
    model = _model()
    with pytest.raises(RuntimeError, match="boom"):
        with guided_relus(model) as n:
            assert n == 2
            raise RuntimeError("boom")
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ValueError, match="out of range"):
        guided_backprop(Engine(model), torch.randn(1, 3, 10, 10), 7)
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_errors():
    engine = Engine(_model())
    with pytest.raises(ValueError, match="4-D"):
        guided_backprop(engine, torch.randn(3, 10, 10))
    with pytest.raises(ValueError, match="targets"):
        guided_backprop(engine, torch.randn(2, 3, 10, 10), [1, 2, 3])
    with pytest.raises(TypeError):
        guided_backprop(engine, torch.randn(1, 3, 10, 10), 2.5)
