"""Score-CAM: parity with pytorch-grad-cam in its mode, the official code's
definition, the default's softmax weights, batching and memory bounds."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

import fastcam
from fastcam.compat.numerics import PytorchGradCAMScoreCAM
from fastcam.kernels import reference


def _score_cam(*args, mode="default", **kwargs):
    """Score-CAM in ``mode``: pytorch-grad-cam's is fastcam.compat.numerics' class."""
    cls = PytorchGradCAMScoreCAM if mode == "pytorch-grad-cam" else fastcam.ScoreCAM
    return cls(*args, mode=mode, **kwargs)


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18().eval()


def test_matches_pytorch_grad_cam(resnet18):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        targets = resnet18(x).argmax(1).tolist()
    with pgc.ScoreCAM(resnet18, [resnet18.layer4]) as theirs:
        theirs.batch_size = 128
        expected = theirs(x, [ClassifierOutputTarget(t) for t in targets])
    with PytorchGradCAMScoreCAM(resnet18, "layer4", batch_size=100) as ours:
        got = ours(x, targets)
    assert (got.amax(dim=(1, 2)) == 1).all()
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)


def _eager_channel_scores(model, x, A, targets, score, align_corners, eps, normalize=None):
    """Plain Score-CAM loop: every masked copy materialised, one forward each."""
    B, K = A.shape[:2]
    out = torch.zeros(B, K)
    mean, std = (None, None) if normalize is None else (torch.tensor(normalize[0]).view(1, -1, 1, 1),
                                                        torch.tensor(normalize[1]).view(1, -1, 1, 1))
    with torch.no_grad():
        for b in range(B):
            for k in range(K):
                u = F.interpolate(A[b, k][None, None], size=x.shape[-2:], mode="bilinear",
                                  align_corners=align_corners)
                rng = u.max() - u.min() + eps
                m = (u - u.min()) / rng if rng > 0 else torch.zeros_like(u)
                xm = x[b:b + 1] * m
                if mean is not None:
                    xm = (xm - mean) / std
                logits = model(xm)
                v = logits.softmax(1) if score == "probability" else logits
                out[b, k] = v[0, targets[b]]
    return out


def test_default_and_official_modes_match_eager_definitions():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(6, 5, 3, stride=2, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(5, 4)).eval()
    x = torch.rand(2, 3, 16, 16)
    normalize = ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3))
    with fastcam.ScoreCAM(model, "3", batch_size=3, normalize=normalize) as cam:
        maps = cam(x, [1, 3])
        A = cam.last.activations[0]
        s = _eager_channel_scores(model, x, A, [1, 3], "logit", False, 0.0, normalize)
        torch.testing.assert_close(cam.last.weights[0], s.softmax(1), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(maps, reference.cam_combine(A, s.softmax(1), (16, 16)),
                                   atol=1e-5, rtol=1e-4)
    with fastcam.ScoreCAM(model, "3", mode="official") as cam:
        maps = cam(x, [1, 3])
        A = cam.last.activations[0]
        p = _eager_channel_scores(model, x, A, [1, 3], "probability", False, 0.0)
        constant = A.flatten(2).amax(-1) == A.flatten(2).amin(-1)
        p[constant] = 0
        torch.testing.assert_close(cam.last.weights[0], p, atol=1e-6, rtol=1e-5)
        up = F.interpolate(A, size=(16, 16), mode="bilinear")
        sal = torch.relu((p[:, :, None, None] * up).sum(1))
        lo, hi = sal.amin((1, 2), keepdim=True), sal.amax((1, 2), keepdim=True)
        torch.testing.assert_close(maps, (sal - lo) / (hi - lo), atol=1e-5, rtol=1e-4)


def test_batch_equals_single_images(resnet18):
    x = torch.randn(3, 3, 48, 48)
    batch = fastcam.explain(resnet18, x, "scorecam", "layer3", [1, 2, 3], batch_size=64)
    single = torch.cat([fastcam.explain(resnet18, x[i:i + 1], "scorecam", "layer3", [t], batch_size=64)
                        for i, t in enumerate([1, 2, 3])])
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=1e-4)


def test_chunk_size_bounds_the_model_batch(resnet18):
    x = torch.randn(1, 3, 64, 64)
    cam = fastcam.ScoreCAM(resnet18, "layer4", batch_size=100)
    for dedupe in (False, True):
        seen = []
        handle = resnet18.conv1.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
        cam.dedupe = dedupe
        try:
            cam(x, 0)
        finally:
            handle.remove()
        # one clean forward of 1, then the masked copies in chunks of at most 100 (the
        # engine may pick a smaller chunk it measured faster): all 512 channels', or one
        # per distinct copy
        ran = int(cam.last.extra["masked_forwards"][0].sum())
        assert seen[0] == 1 and max(seen[1:]) <= 100 and sum(seen[1:]) == ran
        assert ran == 512 if not dedupe else ran <= 512


def test_mode_and_target_errors(resnet18):
    with pytest.raises(ValueError, match="mode"):
        fastcam.ScoreCAM(resnet18, "layer4", mode="paper")
    with pytest.raises(ValueError, match="class-index targets"):
        fastcam.explain(resnet18, torch.randn(1, 3, 64, 64), "scorecam", "layer4",
                        [lambda r: r[0]], mode="official")


# -- each distinct masked copy runs once ----------------------------------------------

_MODE_OPTIONS = {"default": (0.0, False), "pytorch-grad-cam": (1e-8, True), "official": (0.0, False)}


def _distinct_copies(x, A, mode, normalize=None):
    """Brute force: every channel's copy built by the op, counted per image by its
    bytes (constant channels left out in the official mode, which skips them)."""
    eps, align_corners = _MODE_OPTIONS[mode]
    mean, std = (None, None) if normalize is None else map(torch.tensor, normalize)
    counts = []
    for b in range(A.shape[0]):
        maps = A[b]
        if mode == "official":
            flat = maps.flatten(1)
            maps = maps[flat.amax(1) > flat.amin(1)]
        copies = fastcam.ops.mask_blend(x[b:b + 1], maps, torch.zeros(len(maps), dtype=torch.long),
                                        mean=mean, std=std, eps=eps, align_corners=align_corners)
        counts.append(len({c.numpy().tobytes() for c in copies}))
    return counts


class _Plant(torch.nn.Module):
    """Channels planted in a feature map f (B,4,h,w): f, two duplicates, an all-zero
    channel, constants 6.0 and 1.7, and two channels gated per image (gate 0: an
    all-zero channel and the constant 2.5 become zero; gate 1: a new channel f3²
    and the constant 2.5)."""

    def forward(self, f, gate):
        const = lambda c: torch.full_like(f[:, :1], c)          # noqa: E731
        return torch.cat([f, f[:, :2], const(0.0), const(6.0), const(1.7),
                          const(2.5) * gate, f[:, 3:] ** 2 * gate], dim=1)


class _PlantedNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1),
                                            torch.nn.AdaptiveAvgPool2d(5))
        self.plant = _Plant()
        self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                        torch.nn.Linear(11, 6))

    def forward(self, x):
        gate = (x[:, :1, :1, :1] > 0.5).to(x.dtype)
        return self.head(self.plant(self.features(x), gate))


# distinct copies per image (gate 1, gate 0) at 41×41 from 5×5 maps: with
# align_corners=True and +1e-8 the constants 6.0 and 1.7 upsample to a
# non-constant map (rounding), so their copies are not black
_PLANTED_COUNTS = {"default": [6, 5], "pytorch-grad-cam": [8, 7], "official": [5, 4]}


def _planted_input(gates):
    x = torch.rand(len(gates), 3, 41, 41)
    x[:, 0, 0, 0] = torch.tensor([0.9 if g else 0.1 for g in gates])
    return x


# copies the model runs per image without dedupe (gate 1, gate 0): all 11 channels,
# or in the official mode the 7 (6) non-constant ones
_ALL_COUNTS = {"default": [11, 11], "pytorch-grad-cam": [11, 11], "official": [7, 6]}


@pytest.mark.parametrize("mode", ["default", "pytorch-grad-cam", "official"])
def test_dedupe_equals_all_channels_on_planted_channels(mode):
    torch.manual_seed(0)
    model = _PlantedNet().eval()
    normalize = ((0.4, 0.5, 0.6), (0.2, 0.3, 0.25))
    batch = _planted_input([1, 0, 1])
    targets = [1, 4, 2]
    for x, t in [(batch, targets), (batch[1:2], targets[1:2])]:      # B > 1 and B = 1
        gates = (x[:, 0, 0, 0] > 0.5).long().tolist()
        runs = {}
        with _score_cam(model, "plant", mode=mode, batch_size=4, normalize=normalize) as cam:
            for dedupe in (True, False):
                sizes = []
                handle = model.features.register_forward_hook(
                    lambda m, i, o: sizes.append(o.shape[0]))
                cam.dedupe = dedupe
                try:
                    runs[dedupe] = cam(x, t), cam.last, sizes[1:]     # sizes[0]: the capture pass
                finally:
                    handle.remove()
        (deduped, last, ran), (full, last_full, ran_full) = runs[True], runs[False]
        # the copies run in other chunks, and oneDNN's float32 convolution rounds with the
        # batch's composition: the maps agree to rounding (up to ~7e-6 seen on AVX512 CPUs)
        torch.testing.assert_close(deduped, full, atol=2e-5, rtol=0)
        torch.testing.assert_close(last.weights[0], last_full.weights[0], atol=1e-6, rtol=1e-6)
        counts = last.extra["masked_forwards"][0].tolist()
        assert counts == [_PLANTED_COUNTS[mode][1 - g] for g in gates]
        assert counts == _distinct_copies(x, last.activations[0], mode, normalize)
        assert sum(ran) == sum(counts) and max(ran) <= 4
        counts_full = last_full.extra["masked_forwards"][0].tolist()
        assert counts_full == [_ALL_COUNTS[mode][1 - g] for g in gates]
        assert sum(ran_full) == sum(counts_full)


def test_dedupe_with_callable_targets():
    torch.manual_seed(0)
    model = _PlantedNet().eval()
    x = _planted_input([0, 1])
    targets = [lambda row: row[2], lambda row: row[:3].sum()]
    with PytorchGradCAMScoreCAM(model, "plant", batch_size=5) as cam:
        deduped = cam(x, targets)
        assert cam.last.extra["masked_forwards"][0].tolist() == [7, 8]
        cam.dedupe = False
        torch.testing.assert_close(deduped, cam(x, targets), atol=2e-5, rtol=0)   # chunking: as above


_REAL_COUNTS = {"default": [90, 89], "pytorch-grad-cam": [91, 91]}


@pytest.mark.parametrize("mode", ["default", "pytorch-grad-cam"])
def test_dedupe_equals_all_channels_on_real_photos(mode):
    """The bundled model on two real photos at 32×32, layer _blocks.1._act1 (96
    channels of 8×8): all-zero channels and channels constant at 3.115 (both
    photos) and 0.756 (coffee). Their copies are black except with
    pytorch-grad-cam's align_corners=True and +1e-8, where the non-zero constants
    upsample to rounding noise that min-max scaling magnifies: 90/89 distinct
    copies in the default mode, 91/91 in pytorch-grad-cam's (the official mode,
    which runs no constant channel, is covered by the planted test)."""
    model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
    x, _ = fastcam.data.load_photos(["chelsea", "coffee"], size=32)
    with _score_cam(model, "_blocks.1._act1", mode=mode, batch_size=64,
                          normalize=model.normalization) as cam:
        deduped = cam(x)
        last = cam.last
        cam.dedupe = False
        full = cam(x)
    torch.testing.assert_close(deduped, full, atol=1e-6, rtol=0)
    torch.testing.assert_close(last.weights[0], cam.last.weights[0], atol=1e-6, rtol=1e-6)
    A = last.activations[0]
    flat = A.flatten(2)
    assert (flat.amax(-1) == flat.amin(-1)).sum(1).tolist() == [7, 8]
    counts = last.extra["masked_forwards"][0]
    assert counts.tolist() == _distinct_copies(x, A, mode, model.normalization)
    assert counts.tolist() == _REAL_COUNTS[mode]
