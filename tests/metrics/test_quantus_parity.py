"""fastcam's metrics against Quantus 0.6 (the reference metrics toolkit) on the
same maps, masks, images and models, for every metric both define the same way:
sparseness, complexity, relevance mass and rank accuracy, the pointing game
(tolerance 0), ROAD's imputation and its accuracy curve, and the model
randomisation check (Quantus's MPRT). Where the definitions differ (ties, a
constant map, signed maps) the cases are left out here and described in
docs/metrics.md."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import fastcam.metrics as M

quantus = pytest.importorskip("quantus", reason="the parity tests need quantus (the test extra)")


def _quiet(metric_cls, **kwargs):
    return metric_cls(disable_warnings=True, display_progressbar=False, **kwargs)


@pytest.fixture
def maps_and_mask():
    g = np.random.default_rng(0)
    B, H, W = 4, 24, 20
    a = g.random((B, 1, H, W)).astype(np.float32)         # continuous: no ties
    a[1] **= 6                                            # a peaked map
    a[2, :, :, :10] = 0.0                                 # half of it zero (ties among zeros)
    s = np.zeros((B, 1, H, W), dtype=bool)
    s[0, :, 3:12, 4:15] = True
    s[1, :, 10:24, 0:7] = True
    s[2, :, 0:5, 12:20] = True
    i, j = np.unravel_index(a[3, 0].argmax(), (H, W))
    s[3, :, i, j] = True                                  # a one-pixel object, at the map's peak
    x = g.random((B, 3, H, W)).astype(np.float32)
    return a, s, x


def _call(metric, a, s, x, model=None, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = metric(model=model, x_batch=x, y_batch=np.zeros(len(a), int) if y is None else y,
                     a_batch=a.copy(), s_batch=s, device="cpu")
    return np.asarray(out, dtype=np.float64)


@pytest.mark.parametrize("name", ["sparseness", "complexity"])
def test_complexity_metrics_equal_quantus(maps_and_mask, name):
    a, s, x = maps_and_mask
    ref = _call(_quiet(getattr(quantus, name.capitalize())), a, None, x)
    mine = getattr(M, name)(torch.from_numpy(a[:, 0])).double().numpy()
    # Quantus's guards (+1e-7 before the Gini index, ln(p + 1e-12)) move the values by < 1e-5
    np.testing.assert_allclose(mine, ref, rtol=0, atol=2e-5)
    # and the values are not trivially equal: the four maps give four different scores
    assert len(np.unique(np.round(mine, 4))) == len(a)


def test_relevance_mass_accuracy_equals_quantus(maps_and_mask):
    a, s, x = maps_and_mask
    ref = _call(_quiet(quantus.RelevanceMassAccuracy), a, s, x)
    mine = M.relevance_mass_accuracy(torch.from_numpy(a[:, 0]), torch.from_numpy(s[:, 0])).double().numpy()
    np.testing.assert_allclose(mine, ref, rtol=1e-6, atol=1e-7)


def test_relevance_rank_accuracy_equals_quantus(maps_and_mask):
    a, s, x = maps_and_mask
    keep = [0, 1, 3]                     # map 2's zeros are tied at its K-th value: Quantus's argsort decides
    a, s, x = a[keep], s[keep], x[keep]
    ref = _call(_quiet(quantus.RelevanceRankAccuracy), a, s, x)
    mine = M.relevance_rank_accuracy(torch.from_numpy(a[:, 0]), torch.from_numpy(s[:, 0])).double().numpy()
    np.testing.assert_allclose(mine, ref, rtol=1e-6, atol=1e-7)


def test_relevance_rank_accuracy_counts_a_tie_at_its_expected_share():
    # K = 2 inside pixels; the top-2 are the 5 and one of three 1s, one of which is inside
    m = torch.tensor([[[5.0, 1.0, 1.0, 1.0]]])
    inside = torch.tensor([[[True, True, False, False]]])
    assert M.relevance_rank_accuracy(m, inside).item() == pytest.approx((1 + 1 / 3) / 2)


def test_pointing_game_equals_quantus_without_tolerance(maps_and_mask):
    a, s, x = maps_and_mask
    ref = _call(_quiet(quantus.PointingGame), a, s, x)
    mine = M.pointing_game(torch.from_numpy(a[:, 0]), torch.from_numpy(s[:, 0]), tolerance=0).double().numpy()
    np.testing.assert_array_equal(mine, ref)
    assert 0 < mine.sum() < len(mine)                     # hits and misses both occur


def _grey_model():
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4)).eval()


def test_road_accuracy_curve_equals_quantus():
    # Quantus 0.6's ROAD indexes the flattened (H·W) image with indices of the map
    # broadcast to the image's channels, so it runs only on one-channel images:
    # the settings match there. Its curve is whether the class stays the argmax
    # after removing the int(H·W·p/100) most relevant pixels (MoRF), imputed
    # without noise; fastcam's road_changes on the same removals, with the target
    # "is the argmax the label" (a callable), gives the change of that indicator.
    model = _grey_model()
    g = np.random.default_rng(1)
    B, H, W = 6, 10, 12
    x = g.random((B, 1, H, W)).astype(np.float32)
    a = g.random((B, 1, H, W)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()
    percentages = [10, 30, 50, 70, 90]
    curve = _quiet(quantus.ROAD, percentages=percentages, noise=0.0)(
        model=model, x_batch=x, y_batch=y, a_batch=a.copy(), device="cpu")
    ref = np.array([curve[p] for p in percentages], dtype=np.float64)   # accuracy per percentage

    order = np.argsort(-a.reshape(B, -1), axis=1)
    keeps = np.ones((len(percentages), B, H * W), dtype=bool)
    for r, p in enumerate(percentages):
        for b in range(B):
            keeps[r, b, order[b, :int(H * W * p / 100)]] = False
    keeps = torch.from_numpy(keeps.reshape(len(percentages), B, H, W))
    correct = [lambda row, c=int(c): (row.argmax() == c).double() for c in y]
    changes, imputed = M.road_changes(model, torch.from_numpy(x), keeps, correct, noise=0.0, tol=1e-10,
                                      max_iter=500, return_images=True)
    mine = (changes + 1.0).mean(1).double().numpy()       # every clean image is correct (y = argmax)
    np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-6)
    assert ref.min() < 1.0                                # removals changed some predictions

    # the imputed images themselves equal Quantus's imputation (a sparse direct solve)
    from quantus.functions.perturb_func import noisy_linear_imputation as q_impute

    for r, p in enumerate(percentages):
        for b in range(B):
            removed = order[b, :int(H * W * p / 100)]
            want = q_impute(arr=x[b], indices=removed, noise=0.0)
            np.testing.assert_allclose(imputed[r, b].numpy(), want, rtol=0, atol=1e-5)


def _sanity_model():
    torch.manual_seed(5)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                         nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 5)).eval()


@pytest.mark.parametrize("layers, order", [("cascade", "top_down"), ("independent", "independent")])
def test_randomisation_check_equals_quantus_mprt(layers, order):
    from fastcam.methods import GradCAM

    model = _sanity_model()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 3, 16, 16, generator=g)
    with torch.no_grad():
        y = model(x).argmax(1)

    def explain(model, inputs, targets, **kwargs):
        maps = GradCAM(model, "3")(torch.as_tensor(inputs), [int(t) for t in targets])
        return maps[:, None].detach().numpy()

    a = explain(model, x, y)
    ref = _quiet(quantus.MPRT, layer_order=order, seed=42)(
        model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a, explain_func=explain, device="cpu")
    mine = M.randomisation_sanity("gradcam", model, x, y.tolist(), target_layers="3", layers=layers,
                                     seed=43, reseed=True)
    layer_names = [g[-1] for g in mine.randomised[1:]]               # top first
    # the same layers (Quantus lists "independent" bottom first: the order does not change its values)
    assert sorted(layer_names) == sorted(k for k in ref if k != "original")
    want = np.array([ref[k] for k in layer_names], dtype=np.float64)  # (layers, B)
    np.testing.assert_allclose(mine.spearman[1:].numpy(), want, rtol=1e-6, atol=1e-9)
    assert (np.abs(want) < 0.999).any()                              # randomising changed some maps
