"""fastcam.methods.feature_factorization natively: a known answer (activations of exact
non-negative rank k are reconstructed), concepts shared by the batch, maps in [0, 1] at the
input's size, the model left without hooks, clear errors."""
import warnings

import pytest
import torch
from torch import nn

from fastcam.methods.feature_factorization import Factorization, deep_feature_factorization, dff, nmf


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5)).eval()


def test_nmf_reconstructs_an_exact_low_rank_matrix():
    g = torch.Generator().manual_seed(0)
    X = (torch.rand(30, 3, generator=g, dtype=torch.float64) @ torch.rand(3, 40, generator=g, dtype=torch.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W, H, _ = nmf(X, 3, tol=1e-10, max_iter=2000)
    assert (W >= 0).all() and (H >= 0).all()
    assert float(torch.linalg.norm(X - W @ H) / torch.linalg.norm(X)) < 1e-3


def test_dff_shapes_shift_and_tensor_in_tensor_out():
    A = torch.rand(2, 6, 5, 4) - 0.3                                 # negative values: shifted per channel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        concepts, heatmaps = dff(A, 3)
    assert isinstance(concepts, torch.Tensor) and concepts.shape == (6, 3)
    assert heatmaps.shape == (2, 3, 5, 4) and (heatmaps >= 0).all()
    offset = A.transpose(0, 1).reshape(6, -1).min(1).values
    assert (concepts >= offset[:, None] - 1e-6).all()


def test_deep_feature_factorization():
    model = _model()
    x = torch.randn(3, 3, 20, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = deep_feature_factorization(model, x, "2", n_components=4)
        A = model[:3](x)
        concepts, heatmaps = dff(A, 4)
    assert isinstance(found, Factorization)
    torch.testing.assert_close(found.concepts, concepts, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(found.heatmaps, heatmaps, atol=1e-5, rtol=1e-5)
    assert found.maps.shape == (3, 4, 20, 20)
    assert float(found.maps.min()) >= 0 and float(found.maps.max()) <= 1
    assert all(not m._forward_hooks for m in model.modules())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_module = deep_feature_factorization(model, x, model[2], n_components=4)
    torch.testing.assert_close(by_module.concepts, found.concepts)


def test_errors():
    model = _model()
    with pytest.raises(ValueError, match="no layer named"):
        deep_feature_factorization(model, torch.randn(1, 3, 8, 8), "fc")
    with pytest.raises(ValueError):
        deep_feature_factorization(model, torch.randn(3, 8, 8), "2")
    with pytest.raises(ValueError, match="n_components"):
        nmf(torch.rand(4, 4), 0)
    with pytest.raises(ValueError, match="non-negative"):
        nmf(-torch.rand(4, 4), 2)
    with pytest.raises(ValueError):
        dff(torch.rand(2, 3, 4), 2)
