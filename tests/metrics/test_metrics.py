"""Faithfulness metrics: hand-computed values on tiny models, Fake-CAM on the real
model, insertion/deletion against a plain loop, and pytorch-grad-cam parity."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import fastcam
from fastcam import metrics
from fastcam.metrics.insertion_deletion import rise_blur, saliency_rank


class MeanLogit(nn.Module):
    """logits = [a · mean(x), 0]: the class-0 probability is sigmoid(a · mean(x))."""

    def __init__(self, a):
        super().__init__()
        self.a = a

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([self.a * m, torch.zeros_like(m)], dim=1)


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def test_confidence_metrics_by_hand():
    model = MeanLogit(4.0)
    x = torch.ones(2, 3, 4, 4)
    maps = torch.stack([torch.full((4, 4), 0.5), torch.ones(4, 4)])
    maps[1, 0, 0] = 0.0                                   # drop 1 pixel of 16
    p = sigmoid(4.0)
    o = [sigmoid(2.0), sigmoid(4.0 * 15 / 16)]
    d = [sigmoid(2.0), sigmoid(4.0 * 1 / 16)]
    torch.testing.assert_close(metrics.average_drop(model, x, maps, 0),
                               torch.tensor([(p - o[0]) / p, (p - o[1]) / p]))
    assert metrics.average_increase(model, x, maps, 0).tolist() == [0.0, 0.0]
    assert metrics.average_gain(model, x, maps, 0).tolist() == [0.0, 0.0]
    torch.testing.assert_close(metrics.average_drop_in_deletion(model, x, maps, 0),
                               torch.tensor([(p - d[0]) / p, (p - d[1]) / p]))
    # class 1 gains when the mask lowers the mean
    q, r = 1 - sigmoid(4.0), 1 - sigmoid(2.0)
    torch.testing.assert_close(metrics.average_gain(model, x, maps, 1)[0], torch.tensor((r - q) / (1 - q)))
    assert metrics.average_increase(model, x, maps, 1).tolist() == [1.0, 1.0]


class CountingForwards(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_confidence_changes_equal_the_single_metrics_in_fewer_passes():
    model = CountingForwards(MeanLogit(3.0))
    torch.manual_seed(0)
    x, maps = torch.rand(5, 3, 6, 7), torch.rand(5, 6, 7)
    targets = [0, 1, 0, 1, 1]
    both = metrics.confidence_changes(model, x, maps, targets, batch_size=2, which=("ai", "ad"))
    assert list(both) == ["ai", "ad"] and model.calls == 2 * 3      # clean + masked, 3 chunks each
    single = {"ad": metrics.average_drop, "ai": metrics.average_increase,
              "ag": metrics.average_gain, "add": metrics.average_drop_in_deletion}
    every = metrics.confidence_changes(model, x, maps, targets)
    for name, fn in single.items():
        torch.testing.assert_close(every[name], fn(model, x, maps, targets), rtol=0, atol=0)
    torch.testing.assert_close(both["ad"], every["ad"], rtol=0, atol=0)
    with pytest.raises(ValueError, match="subset"):
        metrics.confidence_changes(model, x, maps, targets, which=("ad", "auc"))
    with pytest.raises(ValueError, match="subset"):
        metrics.confidence_changes(model, x, maps, targets, which=())


def test_normalize_masks_pixel_space():
    model = MeanLogit(1.0)
    x = torch.full((1, 3, 2, 2), 0.5)
    maps = torch.zeros(1, 2, 2)                           # everything masked: black pixels
    # model sees (0 - 0.5)/0.25 = -2 with normalisation, 0 without
    ad_norm = metrics.average_drop(model, x, maps, 0, normalize=((0.5,) * 3, (0.25,) * 3))
    p = sigmoid(0.0)
    torch.testing.assert_close(ad_norm, torch.tensor([(p - sigmoid(-2.0)) / p]))
    ad_plain = metrics.average_drop(model, x, maps, 0)
    torch.testing.assert_close(ad_plain, torch.tensor([(sigmoid(0.5) - sigmoid(0.0)) / sigmoid(0.5)]))


def _eager_curve(model, x, maps, cls, steps, insertion):
    """RISE's loop: one image at a time, one step at a time."""
    B, C, H, W = x.shape
    per = math.ceil(H * W / steps)
    out = torch.zeros(B, steps + 1)
    blurred = rise_blur(x)
    with torch.no_grad():
        for b in range(B):
            order = torch.sort(maps[b].flatten(), descending=True, stable=True).indices
            cur = (blurred[b] if insertion else x[b]).clone().view(C, -1)
            for t in range(steps + 1):
                if t > 0:
                    idx = order[(t - 1) * per:t * per]
                    cur[:, idx] = x[b].view(C, -1)[:, idx] if insertion else 0.0
                out[b, t] = model(cur.view(1, C, H, W)).softmax(1)[0, cls[b]]
    return out


def test_insertion_deletion_match_plain_loop():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).eval()
    x = torch.rand(2, 3, 10, 9)
    maps = torch.rand(2, 10, 9)
    maps[0, :3] = 0.5                                      # ties: stable order
    for insertion, fn in ((False, metrics.deletion_auc), (True, metrics.insertion_auc)):
        auc, curve = fn(model, x, maps, [0, 2], steps=7, batch_size=5, return_curve=True)
        expected = _eager_curve(model, x, maps, [0, 2], 7, insertion)
        torch.testing.assert_close(curve, expected, atol=1e-6, rtol=1e-5)
        trapezoid = torch.tensor(np.trapezoid(expected.numpy(), dx=1 / 7, axis=1), dtype=auc.dtype)
        torch.testing.assert_close(auc, trapezoid, atol=1e-6, rtol=1e-5)


def test_deletion_by_hand():
    model = MeanLogit(6.0)
    x = torch.ones(1, 1, 4, 4)
    maps = torch.rand(1, 4, 4)
    auc, curve = metrics.deletion_auc(model, x, maps, 0, steps=4, return_curve=True)
    expected = torch.tensor([[sigmoid(6.0 * (1 - t / 4)) for t in range(5)]])
    torch.testing.assert_close(curve, expected)
    assert curve[0, -1] == 0.5                            # all deleted: logit 0


def test_rank_and_blur():
    maps = torch.tensor([[[0.1, 0.9], [0.5, 0.9]]])
    assert saliency_rank(maps).tolist() == [[3, 0, 2, 1]]
    x = torch.zeros(1, 1, 21, 21)
    x[0, 0, 10, 10] = 1
    k = rise_blur(x)[0, 0, 5:16, 5:16]
    assert math.isclose(float(k.sum()), 1.0, rel_tol=1e-6)
    torch.testing.assert_close(k, k.flip(0))
    torch.testing.assert_close(k, k.t())


def test_fake_cam_has_zero_drop_and_gain():
    """Opti-CAM's Fake-CAM: all ones but one pixel keeps the image as it is."""
    from fastcam.data import load_photos

    model = fastcam.models.efficientnet_lite0()
    x, _ = load_photos(["chelsea", "coffee"])
    fake = torch.ones(2, 224, 224)
    fake[:, 0, 0] = 0
    norm = model.normalization
    assert metrics.average_drop(model, x, fake, normalize=norm).max() < 0.01
    assert metrics.average_gain(model, x, fake, normalize=norm).max() < 0.01


def test_matches_pytorch_grad_cam_confidence_metrics():
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.metrics.cam_mult_image import DropInConfidence, IncreaseInConfidence
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=7).eval()
    x = torch.randn(4, 3, 64, 64)
    maps = fastcam.explain(model, x, "gradcam")
    with torch.no_grad():
        cls = model(x).argmax(1)
        p = model(x).softmax(1)[torch.arange(4), cls]
    tg = [ClassifierOutputSoftmaxTarget(int(c)) for c in cls]
    drop = DropInConfidence()(x, maps.numpy(), tg, model)
    inc = IncreaseInConfidence()(x, maps.numpy(), tg, model)
    # pytorch-grad-cam's drop is max(0, p − o); Average Drop divides it by p
    np.testing.assert_allclose((metrics.average_drop(model, x, maps) * p).numpy(), drop, atol=1e-6)
    np.testing.assert_allclose(metrics.average_increase(model, x, maps).numpy(), inc)


def test_metric_errors():
    model = MeanLogit(1.0)
    x = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match="maps must be"):
        metrics.average_drop(model, x, torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match="upsample"):
        metrics.average_drop(model, x, torch.rand(2, 2, 2))
    with pytest.raises(ValueError, match="NaN"):
        metrics.insertion_auc(model, x, torch.full((2, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="got 3 targets"):
        metrics.deletion_auc(model, x, torch.rand(2, 4, 4), [0, 1, 1])
