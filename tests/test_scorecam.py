"""Score-CAM: parity with pytorch-grad-cam in its mode, the official code's
definition, the default's softmax weights, batching and memory bounds."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

import fastcam
from fastcam.kernels import reference


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
    with fastcam.ScoreCAM(resnet18, "layer4", mode="pytorch-grad-cam", batch_size=100) as ours:
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
    seen = []
    handle = resnet18.conv1.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    try:
        fastcam.explain(resnet18, torch.randn(1, 3, 64, 64), "scorecam", "layer4", 0, batch_size=100)
    finally:
        handle.remove()
    # one clean forward of 1, then 512 masked copies in chunks of at most 100
    assert seen[0] == 1 and max(seen[1:]) == 100 and sum(seen[1:]) == 512


def test_mode_and_target_errors(resnet18):
    with pytest.raises(ValueError, match="mode"):
        fastcam.ScoreCAM(resnet18, "layer4", mode="paper")
    with pytest.raises(ValueError, match="class-index targets"):
        fastcam.explain(resnet18, torch.randn(1, 3, 64, 64), "scorecam", "layer4",
                        [lambda r: r[0]], mode="official")
