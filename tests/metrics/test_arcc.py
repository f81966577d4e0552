"""fastcam.metrics.arcc natively: the terms' closed forms (Pearson, the L1 term, the
harmonic mean), ARCC from its terms, batched == per image, the same numbers as the
pytorch-grad-cam front-end's ARCC, clear errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fastcam
from fastcam.metrics import arcc, road
from fastcam.metrics.arcc import EPS, coherency_of, harmonic_arcc, l1_per_pixel, pearson

B, SIZE = 2, 24
EXACT = dict(noise=0.0, tol=1e-7, max_iter=200)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()


def _maps(b=B):
    g = torch.Generator().manual_seed(1)
    m = F.interpolate(torch.rand(b, 1, 4, 4, generator=g), size=(SIZE, SIZE), mode="bilinear")[:, 0]
    lo, hi = m.amin((1, 2), keepdim=True), m.amax((1, 2), keepdim=True)
    return (m - lo) / (hi - lo)


def test_terms_closed_forms():
    a = torch.rand(3, 50, dtype=torch.float64)
    b = torch.rand(3, 50, dtype=torch.float64)
    want = [np.corrcoef(a[i].numpy(), b[i].numpy())[0, 1] for i in range(3)]
    np.testing.assert_allclose(pearson(a, b).numpy(), want, atol=1e-7)
    torch.testing.assert_close(pearson(a, -2 * a + 1), -torch.ones(3, dtype=torch.float64), atol=1e-7, rtol=0)
    torch.testing.assert_close(coherency_of(a, a), torch.ones(3, dtype=torch.float64), atol=1e-7, rtol=0)
    assert torch.equal(l1_per_pixel(torch.zeros(2, 4, 4)), torch.zeros(2))
    assert torch.equal(l1_per_pixel(torch.ones(2, 4, 4)), torch.ones(2))
    torch.testing.assert_close(l1_per_pixel(torch.tensor([[[0.5, -0.25], [0.0, 1.0]]])), torch.tensor([0.4375]))
    one = torch.ones(1)
    # coherency 1, complexity 0, ROAD 0.5 (rescaled to 1): every term 1, ARCC 1
    torch.testing.assert_close(harmonic_arcc(one, 0 * one, one / 2), torch.ones(1, dtype=torch.float64))
    # the harmonic mean of (0.5, 0.75, 0.4); ROAD is clipped at 0 and at 1
    torch.testing.assert_close(harmonic_arcc(one / 2, one / 4, one / 5),
                               torch.tensor([3 / (1 / 0.5 + 1 / 0.75 + 1 / 0.4)], dtype=torch.float64))
    assert float(harmonic_arcc(one, 0 * one, -one)) < 1e-7
    torch.testing.assert_close(harmonic_arcc(one, 0 * one, 3 * one), harmonic_arcc(one, 0 * one, one / 2))
    assert EPS == 1e-8


def test_arcc_is_its_terms_and_batched_equals_per_image():
    model = _model()
    cam = fastcam.GradCAM(model, "2")
    x = torch.randn(B, 3, SIZE, SIZE)
    maps = _maps()
    value, terms = arcc(model, x, maps, [1, 3], explainer=cam, percentiles=[30, 70], return_terms=True, **EXACT)
    assert value.shape == (B,) and value.dtype == torch.float64
    torch.testing.assert_close(terms["road"], road(model, x, maps, [1, 3], percentiles=[30, 70], **EXACT))
    torch.testing.assert_close(terms["l1_per_pixel"], maps.mean((1, 2)))
    remaps = cam(x * maps[:, None], [1, 3])
    torch.testing.assert_close(terms["coherency"], coherency_of(maps, remaps))
    torch.testing.assert_close(value, harmonic_arcc(terms["coherency"], terms["l1_per_pixel"], terms["road"]))
    singles = torch.cat([arcc(model, x[i:i + 1], maps[i:i + 1], [[1, 3][i]], explainer=cam,
                              percentiles=[30, 70], **EXACT) for i in range(B)])
    torch.testing.assert_close(value, singles, atol=1e-5, rtol=0)


def test_same_numbers_as_the_grad_cam_front_end():
    from fastcam.compat.pytorch_grad_cam import GradCAM
    from fastcam.compat.pytorch_grad_cam.metrics.arcc import ARCC
    model = _model()
    x = torch.randn(B, 3, SIZE, SIZE)
    maps = _maps()
    base = GradCAM(model, [model[2]])
    targets = [lambda out, c=c: out[c] for c in (1, 3)]
    want = ARCC(base, road_percentiles=[30, 70], **EXACT)(x, maps.numpy(), targets, model)

    def explainer(images, classes):
        return torch.from_numpy(base(input_tensor=images, targets=classes))
    got = arcc(model, x, maps, targets, explainer=explainer, percentiles=[30, 70], **EXACT)
    np.testing.assert_allclose(got.float().numpy(), want, atol=1e-5)


def test_errors():
    model = _model()
    x = torch.randn(B, 3, SIZE, SIZE)
    with pytest.raises(TypeError, match="explainer"):
        arcc(model, x, _maps(), explainer=None)
    with pytest.raises(ValueError, match="maps"):
        arcc(model, x, _maps(1), explainer=fastcam.GradCAM(model, "2"))
    with pytest.raises(ValueError, match="explainer returned"):
        arcc(model, x, _maps(), explainer=lambda images, classes: torch.zeros(B, 4, 4))
    with pytest.raises(ValueError, match="at least 2"):
        pearson(torch.zeros(2, 1), torch.zeros(2, 1))
