"""fastcam.network.split: tail(prefix(x)) == model(x) on the architectures the
papers use, side values, in-place ops after the cut, caching, the numeric check
and the hook-based fallback."""
import functools
import warnings

import pytest
import torch
import torchvision
from torch import nn

import fastcam
from fastcam.network.split import SplitError, split

ARCHS = [
    ("resnet18", "layer4"),
    ("resnet50", "layer4"),
    ("vgg16", "features.29"),
    ("vgg16_bn", "features.42"),
    ("mobilenet_v2", "features.18"),
    ("mobilenet_v3_small", "features.12"),
    ("mobilenet_v3_large", "features.16"),
    ("densenet121", "features"),
    ("efficientnet_b0", "features.8"),
    ("efficientnet_lite0", "_head_act"),
]


@functools.lru_cache(maxsize=None)
def _model(arch: str) -> nn.Module:
    torch.manual_seed(0)
    if arch == "efficientnet_lite0":
        return fastcam.models.efficientnet_lite0(pretrained=False)
    return getattr(torchvision.models, arch)(num_classes=10).eval()


@pytest.mark.parametrize("arch,layer", ARCHS)
def test_split_reproduces_the_model(arch, layer):
    model = _model(arch)
    x = torch.randn(1, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no fallback warning: fx traced it
        prefix, tail = split(model, layer)
        with torch.no_grad():
            A = prefix(x)
            out = tail(A)
            expected = model(x)
            # rows are independent: a batch of 2B activations is 2 blocks of B images
            both = tail(torch.cat([A, 0.5 * A]))
            half = tail(0.5 * A)
    assert tail.mode == prefix.mode == "fx" and tail.n_sides == 0
    assert A.dim() == 4 and A.shape[0] == 1
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(both, torch.cat([out, half]), rtol=1e-5, atol=1e-5)


def test_split_is_cached_and_follows_module_replacement():
    model = torchvision.models.resnet18(num_classes=4).eval()
    first = split(model, "layer4")
    assert split(model, model.layer4) == first          # same objects, by name or module
    assert split(model, "layer3") != first
    model.fc = nn.Linear(512, 7)                         # the cached graph would call the old fc
    prefix, tail = split(model, "layer4")
    assert tail is not first[1]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert tail(prefix(x)).shape == (1, 7)


def test_side_values_inside_a_residual_block():
    # the target layer inside a BasicBlock: the skip connection does not go through it
    model = _model("resnet18")
    x = torch.randn(2, 3, 64, 64)
    prefix, tail = split(model, "layer4.0.conv2")
    with torch.no_grad():
        A = prefix(x)
        torch.testing.assert_close(tail(A), model(x))
        assert tail.n_sides == 1
        # 2B rows: the second block uses the same images' skip values
        A2 = torch.randn_like(A)
        got = tail(torch.cat([A, A2]))
        handle = model.layer4[0].conv2.register_forward_hook(lambda m, i, o: A2)
        try:
            expected = model(x)
        finally:
            handle.remove()
    torch.testing.assert_close(got[2:], expected)
    with pytest.raises(ValueError, match="multiple of 2"):
        tail(A[:1].repeat(3, 1, 1, 1))


def test_inplace_op_after_the_cut_leaves_the_activation_alone():
    model = torchvision.models.vgg11(num_classes=4).eval()   # features.16 conv, then ReLU(inplace)
    x = torch.randn(1, 3, 32, 32)
    prefix, tail = split(model, "features.16")
    with torch.no_grad():
        A = prefix(x)
        kept = A.clone()
        torch.testing.assert_close(tail(A), model(x))
    assert (kept < 0).any() and torch.equal(A, kept)


class Branchy(nn.Module):
    """Data-dependent control flow after the target layer: fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 6, 3, stride=2, padding=1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        a = self.features(x)
        if a.mean() > 0:
            a = a * 2
        return self.fc(torch.relu(self.pool(a).flatten(1)))


def test_untraceable_model_falls_back_to_hooks_with_one_warning():
    model = Branchy().eval()
    x = torch.randn(3, 3, 16, 16)
    with pytest.warns(UserWarning, match="torch.fx could not trace"):
        prefix, tail = split(model, "features")
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # said once: the cached split does not warn again
        assert split(model, "features") == (prefix, tail)
        with torch.no_grad():
            A = prefix(x)
            torch.testing.assert_close(tail(A), model(x))
            A2 = -torch.rand_like(A)              # takes the other branch
            got = tail(torch.cat([A, A2]))
    assert tail.mode == "hooks"
    with torch.no_grad():
        expected = model.fc(torch.relu(model.pool(A2).flatten(1)))
    torch.testing.assert_close(got[3:], expected)


class Scaled(nn.Module):
    """fx bakes `self.scale` into the traced graph as a constant."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 2)
        self.scale = 1.0

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)) * self.scale)


def test_numeric_check_switches_to_hooks_when_the_graph_is_stale():
    model = Scaled().eval()
    prefix, tail = split(model, "conv")
    assert tail.mode == "fx"
    model.scale = 3.0                      # after tracing: the graph still multiplies by 1
    x = torch.randn(2, 3, 8, 8)
    with pytest.warns(UserWarning, match="does not reproduce"):
        with torch.no_grad():
            A = prefix(x)
    assert tail.mode == prefix.mode == "hooks"
    with torch.no_grad():
        torch.testing.assert_close(tail(A), model(x))


def test_split_errors():
    model = _model("resnet18")
    with pytest.raises(ValueError, match="no layer named 'layer5'"):
        split(model, "layer5")

    class DeadBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(3, 4, 3)
            self.aux = nn.Conv2d(4, 4, 1)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            a = self.body(x)
            self.aux(a)                    # computed, then dropped
            return self.fc(a.mean((2, 3)))

    with pytest.raises(SplitError, match="does not depend on layer 'aux'"):
        split(DeadBranch().eval(), "aux")
    with pytest.raises(TypeError, match="nn.Module"):
        split(lambda x: x, "fc")
