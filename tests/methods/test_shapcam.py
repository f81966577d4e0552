"""Shap-CAM: exact Shapley values by enumeration, the closed form on a linear
tail, efficiency, the linear-head fast path against the general path."""
import math

import pytest
import torch
from torch import nn

from fastcam.methods.shapcam import ShapCAM


class Net(nn.Module):
    """conv (target, K×3×3 for 6×6 input) then a tail chosen per test."""

    def __init__(self, tail, K=4):
        super().__init__()
        self.conv = nn.Conv2d(3, K, 3, stride=2, padding=1)
        self.tail = tail

    def forward(self, x):
        return self.tail(self.conv(x))


def nonlinear_tail(K=4, hw=9, classes=3):
    return nn.Sequential(nn.Flatten(), nn.Linear(K * hw, 16), nn.ReLU(), nn.Linear(16, classes))


def _worth(model, A, base, mask, cls, worth):
    Am = torch.where(mask.view(1, 1, *A.shape[-2:]), A, base.view(1, -1, 1, 1))
    logits = model.tail(Am)
    return (logits.softmax(1) if worth == "probability" else logits)[0, cls]


def exact_shapley(model, A, base, cls, worth):
    h, w = A.shape[-2:]
    n = h * w
    values = {}
    for bits in range(2 ** n):
        mask = torch.tensor([(bits >> p) & 1 for p in range(n)], dtype=torch.bool).view(h, w)
        values[bits] = float(_worth(model, A, base, mask, cls, worth))
    phi = torch.zeros(n, dtype=torch.float64)
    for p in range(n):
        for bits in range(2 ** n):
            if bits >> p & 1:
                continue
            s = bin(bits).count("1")
            weight = math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n)
            phi[p] += weight * (values[bits | 1 << p] - values[bits])
    return phi.view(h, w)


@pytest.mark.parametrize("fast_path", ["auto", "never"])
@pytest.mark.parametrize("worth", ["probability", "logit"])
def test_converges_to_exact_shapley_values(fast_path, worth):
    torch.manual_seed(0)
    model = Net(nonlinear_tail()).eval()
    x = torch.randn(1, 3, 6, 6)
    with torch.no_grad():
        A = model.conv(x)
        cls = int(model(x).argmax())
        exact = exact_shapley(model, A, torch.zeros(A.shape[1]), cls, worth)   # the default baseline
    cam = ShapCAM(model, "conv", permutations=300, worth=worth, fast_path=fast_path, seed=3)
    cam(x, cls)
    phi, se = cam.last.extra["phi"][0], float(cam.last.extra["std_error"][0])
    assert cam.last.extra["path"] == ("linear-head" if fast_path == "auto" else "general")
    assert 0 < se < 0.2 * exact.abs().max()
    assert (phi - exact).abs().max() <= 3 * se


def test_logit_worth_on_linear_tail_is_exact_from_one_permutation():
    torch.manual_seed(1)
    tail = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model = Net(tail).eval()
    x = torch.randn(2, 3, 6, 6)
    for baseline in ("mean", "zero"):
        for fast_path in ("auto", "never"):
            cam = ShapCAM(model, "conv", permutations=1, worth="logit", baseline=baseline,
                          fast_path=fast_path, seed=7)
            cam(x, [0, 2])
            A = cam.last.activations[0]
            base = A.mean(dim=(2, 3)) if baseline == "mean" else torch.zeros(2, 4)
            W = tail[2].weight[[0, 2]].detach()
            expected = torch.einsum("bk,bkhw->bhw", W, A - base[:, :, None, None]) / 9
            torch.testing.assert_close(cam.last.extra["phi"].float(), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_efficiency_for_every_permutation(seed):
    torch.manual_seed(seed)
    model = Net(nonlinear_tail()).eval()
    x = torch.randn(1, 3, 6, 6)
    cam = ShapCAM(model, "conv", permutations=1, seed=seed)
    cam(x, 1)
    A = cam.last.activations[0]
    base = torch.zeros(A.shape[1])
    with torch.no_grad():
        v_all = _worth(model, A, base, torch.ones(3, 3, dtype=torch.bool), 1, "probability")
        v_none = _worth(model, A, base, torch.zeros(3, 3, dtype=torch.bool), 1, "probability")
    assert math.isclose(float(cam.last.extra["phi"].sum()), float(v_all - v_none), abs_tol=1e-6)


def _gap_fc_model(seed=0, K=4, classes=3):
    """conv + ReLU (the target layer "features"), then global average pooling + fc."""
    torch.manual_seed(seed)
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(nn.Conv2d(3, K, 3, stride=2, padding=1), nn.ReLU()))
    model.add_module("pool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flat", nn.Flatten())
    model.add_module("fc", nn.Linear(K, classes))
    return model.eval()


@pytest.mark.parametrize("fast_path", ["auto", "never"])
def test_mean_baseline_on_gap_fc_is_an_empty_game_and_warns(fast_path):
    model = _gap_fc_model()
    x = torch.randn(3, 3, 6, 6)
    cam = ShapCAM(model, "features", baseline="mean", permutations=4, fast_path=fast_path)
    with pytest.warns(UserWarning, match=r"v\(∅\) = v\(all\).*\[0, 1, 2\].*use baseline='zero'"):
        cam(x, [0, 1, 2])
    sums = cam.last.extra["phi"].sum(dim=(1, 2))
    assert sums.abs().max() < 1e-6          # efficiency: Σφ = v(all) − v(∅) = 0
    assert (cam.last.extra["phi"] < 0).any()  # so the ReLU blacks out the below-average positions


@pytest.mark.parametrize("fast_path", ["auto", "never"])
def test_zero_baseline_with_logit_worth_is_cam_exactly(fast_path):
    import warnings

    from fastcam.methods.cam import CAM

    model = _gap_fc_model(seed=3)
    x = torch.randn(2, 3, 6, 6)
    cam = ShapCAM(model, "features", worth="logit", permutations=1, fast_path=fast_path)
    assert cam.baseline == "zero"                    # the default
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # no empty-game warning
        maps = cam(x, [2, 0])
    expected = CAM(model, "features")(x, [2, 0])
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-4)
    A = cam.last.activations[0]
    W = model.fc.weight[[2, 0]].detach()
    torch.testing.assert_close(cam.last.extra["phi"].float(),
                               torch.einsum("bk,bkhw->bhw", W, A) / 9, atol=1e-6, rtol=1e-5)


def test_fast_path_equals_general_path_with_max_pooling():
    torch.manual_seed(0)
    # VGG's shape: 2x2 max-pool, identity adaptive pool, flatten, fc, ReLU, dropout, fc
    tail = nn.Sequential(nn.MaxPool2d(2), nn.AdaptiveAvgPool2d((2, 2)), nn.Flatten(),
                         nn.Linear(4 * 4, 12), nn.ReLU(), nn.Dropout(), nn.Linear(12, 5))
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()))
    model.add_module("head", tail)
    model = model.eval()
    x = torch.randn(2, 3, 5, 5)              # 5x5: the last row/column is dropped by the pool
    maps = {}
    for fast_path in ("auto", "never"):
        cam = ShapCAM(model, "features", permutations=6, fast_path=fast_path, seed=11)
        maps[fast_path] = cam(x, [1, 3])
        maps[fast_path + "phi"] = cam.last.extra["phi"]
        assert cam.last.extra["path"] == ("linear-head" if fast_path == "auto" else "general")
    torch.testing.assert_close(maps["autophi"], maps["neverphi"], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(maps["auto"], maps["never"], atol=1e-5, rtol=1e-4)


def _vgg_like(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()))
    model.add_module("head", nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 9, 12),
                                           nn.ReLU(), nn.Linear(12, 5)))
    return model.eval()


def test_window_weights_are_reused_across_explainers_and_follow_the_weights(monkeypatch):
    import gc
    import weakref

    from fastcam.perturbation import coalition_scores as cs

    builds = []
    real = cs._build_window_weights
    monkeypatch.setattr(cs, "_build_window_weights", lambda *a: builds.append(1) or real(*a))
    model = _vgg_like()
    x = torch.randn(2, 3, 6, 6)
    first = ShapCAM(model, "features", permutations=3, seed=1)
    maps = first(x, [1, 4])
    assert first.last.extra["path"] == "linear-head" and len(builds) == 1
    second = ShapCAM(model, "features", permutations=3, seed=1)
    torch.testing.assert_close(second(x, [1, 4]), maps, atol=0, rtol=0)
    assert len(builds) == 1                          # the second explainer reused the layout
    general = ShapCAM(model, "features", permutations=3, seed=1, fast_path="never")
    torch.testing.assert_close(general(x, [1, 4]), maps, atol=1e-5, rtol=1e-4)   # results unchanged
    # the layout is the weight's: W[o, k·windows + j] = layout[o, j, k]
    fc = model.head[2]
    layout = cs._window_cache[id(fc.weight)][2]
    torch.testing.assert_close(layout, fc.weight.detach().view(12, 4, 9).permute(0, 2, 1))
    with torch.no_grad():
        fc.weight.mul_(-2.0)                          # in place: the version counter moves
    changed = second(x, [1, 4])
    assert len(builds) == 2
    fresh = ShapCAM(_copy_of(model), "features", permutations=3, seed=1)(x, [1, 4])
    torch.testing.assert_close(changed, fresh, atol=1e-6, rtol=1e-5)
    # no leak: the cache holds the weight weakly
    ref = weakref.ref(fc.weight)
    del first, second, general, model, fc
    gc.collect()
    assert ref() is None
    assert all(entry[0]() is not None for entry in cs._window_cache.values())
    assert len(cs._window_cache) <= cs.WINDOW_WEIGHT_CACHE_SIZE


def _copy_of(model):
    import copy

    return copy.deepcopy(model)


def test_seed_antithetic_and_stopping():
    torch.manual_seed(0)
    model = Net(nonlinear_tail()).eval()
    x = torch.randn(2, 3, 6, 6)
    a = ShapCAM(model, "conv", permutations=4, seed=5)(x)
    b = ShapCAM(model, "conv", permutations=4, seed=5)(x)
    assert torch.equal(a, b)
    cam = ShapCAM(model, "conv", permutations=64, std_error=1e9, round_size=4)
    cam(x)
    assert cam.last.extra["permutations"].tolist() == [4, 4]       # stopped after one round
    anti = ShapCAM(model, "conv", permutations=8, antithetic=True)
    anti(x)
    assert anti.last.extra["permutations"].tolist() == [8, 8]
    with pytest.raises(ValueError, match="even"):
        ShapCAM(model, "conv", permutations=3, antithetic=True)
    with pytest.raises(ValueError, match="baseline"):
        ShapCAM(model, "conv", baseline="blur")


def test_resnet_general_and_fast_paths_and_batch():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=6).eval()
    x = torch.randn(2, 3, 64, 64)
    fast = ShapCAM(model, "layer4", permutations=3, seed=2)       # GAP + fc: linear head
    slow = ShapCAM(model, "layer4", permutations=3, seed=2, fast_path="never")
    torch.testing.assert_close(fast(x), slow(x), atol=1e-5, rtol=1e-4)
    mid = ShapCAM(model, "layer3", permutations=2, seed=2)          # tail = layer4 + head
    batch = mid(x, [1, 2])
    assert mid.last.extra["path"] == "general"
    single = torch.cat([mid(x[i:i + 1], [t]) for i, t in enumerate([1, 2])])
    torch.testing.assert_close(batch, single, atol=1e-5, rtol=1e-4)


def test_general_path_tail_batches_are_bounded_by_chunk_size():
    import torchvision

    model = torchvision.models.resnet18(num_classes=4).eval()
    x = torch.randn(1, 3, 64, 64)
    cam = ShapCAM(model, "layer3", permutations=3, chunk_size=10)
    seen = []
    # a hooked model runs as given (not on its inference graph): the hook sees every pass
    handle = model.fc.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    try:
        cam(x, 0)                          # builds and checks the split
        seen.clear()
        cam(x, 0)
    finally:
        handle.remove()
    # one prefix/tail pass of the image, then 3 x (16 + 1) coalitions in chunks of at most 10
    # (the engine picks the chunk below the bound by measured throughput)
    assert seen[0] == 1 and max(seen[1:]) <= 10 and sum(seen[1:]) == 3 * 17


def test_functional_global_pool_is_a_linear_head():
    """torchvision's MobileNetV2 pools with F.adaptive_avg_pool2d(x, (1, 1)), then
    Dropout and Linear: a linear head, for Shap-CAM and Ablation-CAM alike, with the
    maps of the general path."""
    import torchvision

    from fastcam.methods.ablationcam import AblationCAM

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(num_classes=6).eval()
    x = torch.randn(2, 3, 64, 64)
    fast = ShapCAM(model, "features.18", permutations=3, seed=2)
    slow = ShapCAM(model, "features.18", permutations=3, seed=2, fast_path="never")
    torch.testing.assert_close(fast(x), slow(x), atol=1e-5, rtol=1e-4)
    assert fast.last.extra["path"] != "general" and slow.last.extra["path"] == "general"
    fast, slow = AblationCAM(model, "features.18"), AblationCAM(model, "features.18", fast_path="never")
    torch.testing.assert_close(fast(x), slow(x), atol=1e-5, rtol=1e-4)
    assert fast.last.extra["path"] == ["linear-head"] and slow.last.extra["path"] == ["tail"]
