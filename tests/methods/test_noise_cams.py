"""SSCAM, ISCAM and SmoothGradCAMpp natively against TorchCAM 0.5.0 (ResNet-18 and
VGG16 in random init, batch 2, the same noise fed to both sides), a closed form on
a GAP + linear head, seeded determinism, batch against single images, chunk size
against the result, bad input."""
import functools

import pytest
import torch
from torch import nn

tcm = pytest.importorskip("torchcam.methods")

from fastcam.methods.iscam import ISCAM  # noqa: E402
from fastcam.methods.smoothgradcampp import SmoothGradCAMpp  # noqa: E402
from fastcam.methods.sscam import SSCAM  # noqa: E402
from fastcam.compat.numerics import TorchCAMSmoothGradCAMpp  # noqa: E402
from fastcam.compat.numerics import normalize as unit_maps  # noqa: E402

TOL = 1e-4
TARGETS = [3, 1]


from _peer_models import quiet_peers  # noqa: E402,F401 (autouse)
from _peer_models import random_model as _model  # noqa: E402


# 64-channel layers keep the K·N masked forwards per image small
LAYERS = {"resnet18": "layer1", "vgg16": "features.4"}


def _input(B=2, size=32, seed=1):
    return torch.rand(B, 3, size, size, generator=torch.Generator().manual_seed(seed))


class _Replay:
    """Stands in for TorchCAM's ``Normal(0, std)``: hands out the given noise tensors
    in TorchCAM's sampling order, checking the shape it asks for."""

    def __init__(self, noise):
        self.noise = list(noise)

    def sample(self, size):
        n = self.noise.pop(0)
        assert tuple(size) == tuple(n.shape), (tuple(size), tuple(n.shape))
        return n.clone()


def _theirs(cls, model, layer, x, noise=None, **kw):
    with cls(model, layer, **kw) as ext:
        if noise is not None:
            ext._distrib = _Replay(noise)
        out = model(x)
        return ext(class_idx=TARGETS, scores=out)[0].detach()


def _low_res(cam):
    return unit_maps(cam.last.low_res[0])      # TorchCAM's normalized=True


# -- parity with TorchCAM --------------------------------------------------------
@pytest.mark.parametrize("arch", ["resnet18", "vgg16"])
def test_sscam_matches_torchcam(arch):
    model, layer, x = _model(arch), LAYERS[arch], _input()
    S = 2 if arch == "resnet18" else 1          # VGG16's classifier dominates its cost
    cam = SSCAM(model, layer, batch_size=48, num_samples=S, std=2.0)
    K = 64
    noise = torch.randn(S, 2, K, 32, 32, generator=torch.Generator().manual_seed(5)) * 2.0
    cam._noise = lambda image, channel, sample, shape, like: noise[sample, image, channel]
    ours = cam(x, TARGETS)
    theirs = _theirs(tcm.SSCAM, model, layer, x, noise, batch_size=48, num_samples=S, std=2.0)
    assert theirs.shape == cam.last.low_res[0].shape
    assert (_low_res(cam) - theirs).abs().max() < TOL
    assert ours.shape == (2, 32, 32) and ours.min() >= 0 and ours.max() <= 1


@pytest.mark.parametrize("arch", ["resnet18", "vgg16"])
def test_iscam_matches_torchcam(arch):
    model, layer, x = _model(arch), LAYERS[arch], _input()
    S = 2 if arch == "resnet18" else 1
    cam = ISCAM(model, layer, batch_size=40, num_samples=S)
    cam(x, TARGETS)
    theirs = _theirs(tcm.ISCAM, model, layer, x, batch_size=40, num_samples=S)
    assert (_low_res(cam) - theirs).abs().max() < TOL


@pytest.mark.parametrize("arch, batch_size", [("resnet18", 3), ("resnet18", 32), ("vgg16", 4)])
def test_smoothgradcampp_matches_torchcam(arch, batch_size):
    model = _model(arch)
    layer = "features.29" if arch == "vgg16" else "layer4"
    x, S = _input(size=64), 3
    noise = torch.randn(S, *x.shape, generator=torch.Generator().manual_seed(6)) * 0.3
    cam = TorchCAMSmoothGradCAMpp(model, layer, num_samples=S, std=0.3, batch_size=batch_size)
    cam._noise = lambda image, sample, shape, like: noise[sample, image]
    cam(x, TARGETS)
    theirs = _theirs(tcm.SmoothGradCAMpp, model, layer, x, noise, num_samples=S, std=0.3)
    assert (_low_res(cam) - theirs).abs().max() < TOL


# -- a GAP + linear head: closed form --------------------------------------------
class _Toy(nn.Module):
    def __init__(self, K=6, C=4):
        super().__init__()
        torch.manual_seed(2)
        self.features = nn.Sequential(nn.Conv2d(3, K, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(K, K, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(K, C)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3)))


@functools.lru_cache(maxsize=None)
def _toy():
    return _Toy().eval()


def test_smoothgradcampp_without_noise_is_the_closed_form():
    """std = 0: every copy is x; on GAP + linear g_k = W[c,k]/(hw) everywhere, so
    a_k = g²/(2g² + g³ Σ A_k + 1e-8) and w_k = hw · a_k · ReLU(g_k), in both modes."""
    model, x = _toy(), _input(size=12)
    A = model.features(x).detach()
    h, w = A.shape[-2:]
    g = model.fc.weight[TARGETS].detach() / (h * w)                      # (B, K)
    a = g ** 2 / (2 * g ** 2 + g ** 3 * A.sum(dim=(2, 3)) + 1e-8)
    expected = h * w * a * torch.relu(g)
    for cls in (TorchCAMSmoothGradCAMpp, SmoothGradCAMpp):
        cam = cls(model, model.features, num_samples=3, std=0.0)
        cam(x, TARGETS)
        torch.testing.assert_close(cam.last.weights[0], expected, rtol=1e-4, atol=1e-7)


def test_smoothgradcampp_modes_differ_with_noise():
    model, x = _toy(), _input(size=12)
    maps = [cls(model, model.features, num_samples=4, std=0.5, seed=1)(x, TARGETS)
            for cls in (TorchCAMSmoothGradCAMpp, SmoothGradCAMpp)]
    assert (maps[0] - maps[1]).abs().max() > 1e-3


# -- seeds, batches, chunks ----------------------------------------------------------
def _noisy(kind, **kw):
    model = _toy()
    if kw.pop("mode", None) == "torchcam":
        return TorchCAMSmoothGradCAMpp(model, model.features[1], num_samples=3, std=0.5, **kw)
    if kind == "sscam":
        return SSCAM(model, model.features, num_samples=3, std=2.0, **kw)
    if kind == "iscam":
        return ISCAM(model, model.features, num_samples=3, **kw)
    # an inner layer: at the last one of a GAP + linear head the gradient is constant
    return SmoothGradCAMpp(model, model.features[1], num_samples=3, std=0.5, **kw)


@pytest.mark.parametrize("kind", ["sscam", "smoothgradcampp"])
def test_same_seed_same_map_other_seed_other_map(kind):
    x = _input(size=12)
    cams = [_noisy(kind, seed=s) for s in (11, 11, 12)]
    a, b, c = (cam(x, TARGETS) for cam in cams)
    assert torch.equal(a, b)
    assert cams[0].last.extra["seed"] == 11
    wa, wc = cams[0].last.weights[0], cams[2].last.weights[0]
    assert (wa - wc).abs().max() > 1e-3 * wa.abs().max()
    torch.manual_seed(4)                         # unseeded: torch's global generator
    d = _noisy(kind)(x, TARGETS)
    torch.manual_seed(4)
    e = _noisy(kind)(x, TARGETS)
    assert torch.equal(d, e)


@pytest.mark.parametrize("kind", ["sscam", "iscam", "smoothgradcampp"])
def test_batch_equals_single_images(kind):
    x = _input(B=3, size=12)
    targets = [0, 2, 3]
    cam = _noisy(kind, seed=3) if kind != "iscam" else _noisy(kind)
    batch = cam(x, targets)
    singles = torch.cat([cam(x[i:i + 1], targets[i]) for i in range(3)])
    torch.testing.assert_close(batch, singles, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["sscam", "iscam", "smoothgradcampp"])
def test_chunk_size_does_not_change_the_maps(kind):
    x = _input(size=12)
    kw = {} if kind == "iscam" else {"seed": 9}
    maps = [_noisy(kind, batch_size=bs, **kw)(x, TARGETS) for bs in (1, 5, 64)]
    for m in maps[1:]:
        torch.testing.assert_close(m, maps[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["sscam", "iscam"])
def test_normalize_masks_the_pixel_image(kind):
    """normalize=(mean, std) is the same as a model that normalises its pixel input."""
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.3, 0.25)
    model = _toy()
    wrapped = nn.Sequential(_Norm(mean, std), model).eval()
    x = _input(size=12)
    cls = SSCAM if kind == "sscam" else ISCAM
    kw = {"seed": 2} if kind == "sscam" else {}
    a = cls(model, model.features, num_samples=2, normalize=(mean, std), **kw)(x, TARGETS)
    b = cls(wrapped, model.features, num_samples=2, **kw)(x, TARGETS)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


class _Norm(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def test_iscam_is_deterministic_and_uses_torchcams_path():
    cam = _noisy("iscam")
    assert cam.sample_scales(torch.device("cpu")).tolist() == pytest.approx([1 / 3, 1, 2])
    x = _input(size=12)
    assert torch.equal(cam(x, TARGETS), cam(x, TARGETS))


def test_callable_targets_equal_class_indices():
    x = _input(size=12)
    fns = [lambda row, c=c: row[c] for c in TARGETS]
    for kind in ("sscam", "smoothgradcampp"):
        torch.testing.assert_close(_noisy(kind, seed=1)(x, fns), _noisy(kind, seed=1)(x, TARGETS),
                                   rtol=0, atol=1e-6)


# -- bad input -----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [SSCAM, ISCAM, SmoothGradCAMpp])
@pytest.mark.parametrize("kw, error", [
    ({"num_samples": 0}, ValueError), ({"num_samples": 2.0}, TypeError),
    ({"batch_size": 0}, ValueError), ({"batch_size": True}, TypeError)])
def test_bad_options(cls, kw, error):
    with pytest.raises(error):
        cls(_toy(), "features", **kw)


@pytest.mark.parametrize("cls", [SSCAM, SmoothGradCAMpp])
@pytest.mark.parametrize("kw, error", [
    ({"std": -1.0}, ValueError), ({"std": float("nan")}, ValueError), ({"std": "1"}, TypeError),
    ({"seed": 1.5}, TypeError)])
def test_bad_noise_options(cls, kw, error):
    with pytest.raises(error):
        cls(_toy(), "features", **kw)


def test_bad_mode_and_inputs():
    with pytest.raises(TypeError, match="mode"):     # TorchCAM's: TorchCAMSmoothGradCAMpp
        SmoothGradCAMpp(_toy(), "features", mode="paper")
    for kind in ("sscam", "iscam", "smoothgradcampp"):
        cam = _noisy(kind, seed=0) if kind != "iscam" else _noisy(kind)
        with pytest.raises(ValueError, match="4-D"):
            cam(torch.rand(3, 12, 12))
        with pytest.raises(ValueError, match="NaN"):
            cam(torch.full((1, 3, 12, 12), float("nan")))
        with pytest.raises(ValueError):
            cam(_input(size=12), [0, 1, 2])          # three targets for two images


@pytest.mark.parametrize("kind", ["sscam", "iscam", "smoothgradcampp"])
def test_bf16_runs_close_to_fp32(kind):
    x = _input(size=12)
    kw = {} if kind == "iscam" else {"seed": 1}
    a = _noisy(kind, **kw)(x, TARGETS)
    b = _noisy(kind, precision="bf16", **kw)(x, TARGETS)
    assert b.dtype == torch.float32 and (a - b).abs().max() < 0.05


def test_smoothgradcampp_front_end_weights_combine_with_the_kept_activations():
    """compute_weights (what a front-end combines): in "torchcam" mode the activations
    are the last noisy copy's, so w·A gives the call's low-resolution map."""
    x = _input(size=12)
    cam = _noisy("smoothgradcampp", seed=5, mode="torchcam")
    ctx = cam.compute_weights(x, TARGETS)
    low = torch.relu(torch.einsum("bk,bkhw->bhw", ctx.weights[0], ctx.activations[0]))
    cam(x, TARGETS)
    torch.testing.assert_close(low, cam.last.low_res[0], rtol=0, atol=1e-6)
    assert not torch.equal(ctx.activations[0], ctx.extra["clean_activations"][0])


@pytest.mark.parametrize("cls", [SSCAM, ISCAM, SmoothGradCAMpp])
def test_each_class_defines_its_weights_and_nothing_the_base_owns(cls):
    """tests/methods/test_method_contract.py's rule, for these classes before registration."""
    assert not {"__call__", "context", "compute_weights"} & set(vars(cls))
    assert [m for m in ("channel_weights", "weighted_activations", "maps") if m in vars(cls)] \
        == ["channel_weights"]
    assert cls.capture == "forward"


@pytest.mark.parametrize("kind", ["sscam", "smoothgradcampp"])
def test_a_generator_seed_draws_each_calls_seed(kind):
    x = _input(size=12)
    a = _noisy(kind, seed=torch.Generator().manual_seed(3))
    b = _noisy(kind, seed=torch.Generator().manual_seed(3))
    first, again = a(x, TARGETS), b(x, TARGETS)
    assert torch.equal(first, again) and a.last.extra["seed"] == b.last.extra["seed"]
    a(x, TARGETS)
    assert a.last.extra["seed"] != b.last.extra["seed"]     # the generator moved on


def test_smoothgradcampp_callable_targets_match_torchcam():
    """TorchCAM's ``targets=`` (one callable per image, on its output row)."""
    model, x, S = _model("resnet18"), _input(size=64), 2
    fns = [lambda row, c=c: row.log_softmax(0)[c] for c in TARGETS]
    noise = torch.randn(S, *x.shape, generator=torch.Generator().manual_seed(8)) * 0.3
    cam = TorchCAMSmoothGradCAMpp(model, "layer4", num_samples=S, std=0.3, batch_size=3)
    cam._noise = lambda image, sample, shape, like: noise[sample, image]
    cam(x, fns)
    with tcm.SmoothGradCAMpp(model, "layer4", num_samples=S, std=0.3) as ext:
        ext._distrib = _Replay(noise)
        model(x)
        theirs = ext(targets=fns)[0].detach()
    assert (_low_res(cam) - theirs).abs().max() < TOL
