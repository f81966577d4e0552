"""ActivationsAndGradients natively: the same records as grad-cam 1.5.7's (ResNet-18,
VGG16 random init, batch 2), reshape_transform, detach=False, release, bad input."""
import functools

import pytest
import torch
import torchvision

from fastcam.compat.pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients

SIZE = 64


@functools.lru_cache(maxsize=None)
def _model(arch):
    torch.manual_seed(0)
    return getattr(torchvision.models, arch)().eval()


def _record(cls, model, layers, x, **kw):
    rec = cls(model, layers, **kw)
    out = rec(x)
    out[:, 3].sum().backward()
    acts, grads = list(rec.activations), list(rec.gradients)
    rec.release()
    model.zero_grad(set_to_none=True)
    return out.detach(), acts, grads


@pytest.mark.parametrize("arch", ["resnet18", "vgg16"])
def test_parity(arch):
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients as Theirs
    model = _model(arch)
    layers = [model.layer3[-1], model.layer4[-1]] if arch == "resnet18" else [model.features[23], model.features[-1]]
    size = SIZE if arch == "resnet18" else 32
    x = torch.randn(2, 3, size, size)
    flat = lambda t: t.flatten(2).transpose(1, 2)          # noqa: E731 (a reshape_transform)
    for kw in ({"reshape_transform": None}, {"reshape_transform": flat}):
        want = _record(Theirs, model, layers, x, **kw)
        got = _record(ActivationsAndGradients, model, layers, x, **kw)
        torch.testing.assert_close(got[0], want[0])
        for g, w in zip(got[1] + got[2], want[1] + want[2], strict=True):
            assert g.device.type == "cpu" and not g.requires_grad
            torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-5)
    assert all(not m._forward_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_live_tensors_release_and_context():
    model = _model("resnet18")
    x = torch.randn(1, 3, SIZE, SIZE)
    with ActivationsAndGradients(model, [model.layer4[-1]], None, detach=False) as rec:
        out = rec(x)
        assert len(rec.handles) == 2 and rec.activations[0].requires_grad
        A = rec.activations[0]
        (g,) = torch.autograd.grad(out[0, 1], A, retain_graph=True)
        out[0, 1].backward(inputs=[A])
        torch.testing.assert_close(rec.gradients[0], g)
        rec(x)
        assert len(rec.activations) == 1 and rec.gradients == []
    assert rec.handles == [] and rec.activations == []
    assert not model.layer4[-1]._forward_hooks


def test_bad_input():
    model = _model("resnet18")
    with pytest.raises(TypeError):
        ActivationsAndGradients(model, [], None)
    with pytest.raises(TypeError):
        ActivationsAndGradients(model, ["layer4"], None)
    with pytest.raises(TypeError):
        ActivationsAndGradients("model", [model.layer4], None)
