"""fastcam.metrics.road natively: known answers (a constant image is imputed exactly, the
kept fraction, the combined value from the curves), batched == per image, the normalize
convention, the same numbers as the pytorch-grad-cam front-end, clear errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastcam.metrics import road, road_changes
from fastcam.metrics.road import keep_mask, percentile_threshold

B, SIZE = 3, 24
EXACT = dict(noise=0.0, tol=1e-7, max_iter=200)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 5)).eval()


def _maps(b=B, size=SIZE, seed=1):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(b, 1, 4, 4, generator=g)
    m = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    lo, hi = m.amin((1, 2), keepdim=True), m.amax((1, 2), keepdim=True)
    return (m - lo) / (hi - lo)


def test_constant_image_is_imputed_exactly():
    model = _model()
    x = torch.full((2, 3, SIZE, SIZE), 0.3)
    for order in ("morf", "lerf", "combined"):
        value, curve = road(model, x, _maps(2), order=order, return_curve=True, **EXACT)
        assert value.shape == (2,)
        torch.testing.assert_close(curve, torch.zeros_like(curve), atol=1e-6, rtol=0)


def test_kept_fraction_and_percentile():
    maps = torch.randperm(100, generator=torch.Generator().manual_seed(0)).float().reshape(1, 10, 10) / 99
    for p in (10, 20, 50, 80, 90):
        assert int(keep_mask(maps, p, "morf").sum()) == p             # distinct values: p % kept
        assert int(keep_mask(maps, p, "lerf").sum()) == p
        kept = keep_mask(maps, p, "morf")
        assert float(maps[kept].max()) < float(maps[~kept].min())      # the most relevant removed
        kept = keep_mask(maps, p, "lerf")
        assert float(maps[kept].min()) > float(maps[~kept].max())      # the least relevant removed
    v = torch.rand(4, 7, 9, dtype=torch.float64)
    np.testing.assert_array_equal(percentile_threshold(v, 37.5).numpy(),
                                  np.percentile(v.reshape(4, -1).numpy(), 37.5, axis=1))


def test_combined_is_half_the_difference_of_the_orders():
    model = _model()
    x = torch.randn(B, 3, SIZE, SIZE)
    maps = _maps()
    value, curve = road(model, x, maps, percentiles=[30, 70], return_curve=True, **EXACT)
    assert curve.shape == (2, 2, B)
    morf = road(model, x, maps, order="morf", percentiles=[30, 70], **EXACT)
    lerf = road(model, x, maps, order="lerf", percentiles=[30, 70], **EXACT)
    torch.testing.assert_close(morf, curve[0].mean(0))
    torch.testing.assert_close(lerf, curve[1].mean(0))
    torch.testing.assert_close(value, (lerf - morf) / 2)


def test_batched_equals_per_image_and_chunking():
    model = _model()
    x = torch.randn(B, 3, SIZE, SIZE)
    maps = _maps()
    both = road(model, x, maps, [1, 2, 4], batch_size=2, chunk_elements=3 * SIZE * SIZE, **EXACT)
    singles = torch.cat([road(model, x[i:i + 1], maps[i:i + 1], [[1, 2, 4][i]], **EXACT) for i in range(B)])
    torch.testing.assert_close(both, singles, atol=1e-5, rtol=0)
    logits = road(model, x, maps, [1, 2, 4], score="logit", **EXACT)
    callables = road(model, x, maps, [lambda out, c=c: out[c] for c in (1, 2, 4)], **EXACT)
    torch.testing.assert_close(logits, callables, atol=1e-6, rtol=0)


def test_normalize_imputes_pixel_space():
    model = _model()
    x = torch.rand(B, 3, SIZE, SIZE)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    wrapped = nn.Sequential(_Normalise(m, s), model)
    got = road(model, x, _maps(), 2, normalize=(mean, std), **EXACT)
    want = road(wrapped, x, _maps(), 2, **EXACT)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


class _Normalise(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x):
        return (x - self.mean) / self.std


def test_same_numbers_as_the_grad_cam_front_end():
    from fastcam.compat.pytorch_grad_cam.metrics import ROADCombined
    model = _model()
    x = torch.randn(B, 3, SIZE, SIZE)
    maps = _maps()
    targets = [lambda out, c=c: out[c] for c in (0, 3, 1)]
    want = ROADCombined([20, 50, 80], **EXACT)(x, maps.numpy(), targets, model)
    got = road(model, x, maps, [0, 3, 1], percentiles=[20, 50, 80], score="logit", **EXACT)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


def test_noise_is_reproducible_with_a_generator():
    model = _model()
    x = torch.randn(B, 3, SIZE, SIZE)
    a = road(model, x, _maps(), generator=torch.Generator().manual_seed(3))
    b = road(model, x, _maps(), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_errors():
    model = _model()
    x = torch.randn(B, 3, SIZE, SIZE)
    maps = _maps()
    with pytest.raises(ValueError, match="order"):
        road(model, x, maps, order="both")
    with pytest.raises(ValueError, match="maps"):
        road(model, x, maps[:2])
    with pytest.raises(ValueError, match="size"):
        road(model, x, maps[:, :-1])
    bad = maps.clone()
    bad[0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        road(model, x, bad)
    with pytest.raises(ValueError, match="percentiles"):
        road(model, x, maps, percentiles=[])
    with pytest.raises(ValueError, match="percentile"):
        road(model, x, maps, percentiles=[120])
    with pytest.raises(ValueError, match="targets"):
        road(model, x, maps, [1, 2])
    with pytest.raises(ValueError, match="keeps"):
        road_changes(model, x, torch.ones(2, B, SIZE, SIZE - 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="batch_size"):
        road(model, x, maps, batch_size=0)
