"""ADVISE and its AVX score: hand-built AVX cases on a tiny model, candidates
against plain Grad-CAMs of the probability, batch against single-image calls."""
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

pytest.importorskip("piq")
import piq  # noqa: E402

import fastcam  # noqa: E402
from fastcam.methods.advise import ADVISE  # noqa: E402
from fastcam.methods.base import minmax  # noqa: E402
from fastcam.metrics.avx import avx, avx_components, pearson  # noqa: E402
from fastcam.ops.adaptive_kde import adaptive_kde  # noqa: E402

IMNET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


# -- AVX on a hand-made model -------------------------------------------------------
class LeftHalf(nn.Module):
    """logit 0 = 20·(mean of the left half − 0.2); classes 1..7 have fixed logits
    1, 0.5, 0, …, −2. Masking the left half (L = 0 → logit −4) drops class 0 to
    the last rank: a top-5 miss; keeping it changes nothing."""

    BIAS = torch.tensor([1.0, 0.5, 0.0, -0.5, -1.0, -1.5, -2.0])

    def forward(self, x):
        left = x[..., : x.shape[-1] // 2].mean(dim=(1, 2, 3))
        rest = self.BIAS.to(x.dtype).expand(x.shape[0], -1)
        return torch.cat([(20 * (left - 0.2))[:, None], rest], 1)


def _image():
    g = torch.Generator().manual_seed(3)
    return 0.1 + 0.8 * torch.rand(1, 3, 32, 32, generator=g)


def _halves():
    ones, zeros = torch.ones(32, 32), torch.zeros(32, 32)
    left = zeros.clone()
    left[:, :16] = 1
    top = zeros.clone()
    top[:16] = 1
    return ones, zeros, left, 1 - left, top


def _probs(model, x):
    return model(x).softmax(1)[0]


def test_avx_perfect_mask_is_one():
    model, x = LeftHalf(), _image()
    ones, _, _, _, top = _halves()
    c = avx_components(model, x, ones[None], top[None])
    assert bool(c.hit[0]) and not bool(c.class_sensitive[0])     # constant Mx: NaN -> not sensitive
    assert c.pearson[0] == 0 and c.ad[0] == 0 and c.mse[0] == 0
    torch.testing.assert_close(c.ssim[0], torch.tensor(1.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(c.fsim[0], torch.tensor(1.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(c.avx[0], torch.tensor(1.0), atol=1e-5, rtol=0)


def test_avx_all_zero_mask_miss_gets_the_worst_values():
    model, x = LeftHalf(), _image()
    _, zeros, _, _, top = _halves()
    c = avx_components(model, x, zeros[None], top[None])
    assert not bool(c.hit[0]) and not bool(c.class_sensitive[0])
    assert c.avx[0] == 0 and c.ad[0] == 1 and c.ssim[0] == 0 and c.fsim[0] == 0 and c.mse[0] == 1
    torch.testing.assert_close(c.mse_raw[0], (x ** 2).mean())  # the black image's raw MSE
    # the option counts the NaN correlation as class-sensitive: penalised, not zeroed
    c2 = avx_components(model, x, zeros[None], top[None], nan_class_sensitive=True)
    assert bool(c2.class_sensitive[0]) and c2.avx[0] > 0


def _expected_avx(x, masked, yc, oc, hit, sensitive):
    ssim = float(piq.ssim(masked, x, data_range=1.0, downsample=False))
    fsim = float(piq.fsim(masked, x, data_range=1.0))
    mse = float(((masked - x) ** 2).mean())
    ad = max(0.0, yc - oc) / yc
    if not hit:
        if sensitive:
            f = 1 - abs(yc - oc)
            ad, ssim, fsim, mse = ad * f, ssim * f, fsim * f, mse * f
        else:
            ad, ssim, fsim, mse = 1.0, 0.0, 0.0, 1.0
    terms = [ssim, fsim, 1 - mse, 1 - ad]
    return 0.0 if min(terms) <= 0 else 4 / sum(1 / t for t in terms)


def test_avx_hit_and_class_sensitive_miss_by_hand():
    model, x = LeftHalf(), _image()
    _, _, left, right, top = _halves()
    p = _probs(model, x)
    yc = float(p[0])
    assert int(p.argmax()) == 0
    # keep the left half (Mx = 0.6 there: >= 0.5 -> kept), uncorrelated Mn: a hit, AD = 0
    c = avx_components(model, x, (0.6 * left)[None], top[None])
    assert bool(c.hit[0]) and bool(c.class_sensitive[0]) and abs(float(c.pearson[0])) < 1e-6
    assert c.ad[0] == 0
    masked = x * left
    torch.testing.assert_close(float(c.avx[0]),
                               _expected_avx(x, masked, yc, yc, True, True), rtol=1e-5, atol=1e-6)
    # keep the right half: a miss; oc = highest probability on the masked image (class 1)
    masked = x * right
    po = _probs(model, masked)
    oc = float(po.max())
    assert int(po.argmax()) == 1 and 0 not in po.topk(5).indices.tolist()
    c = avx_components(model, x, right[None], top[None])
    assert not bool(c.hit[0]) and bool(c.class_sensitive[0])
    torch.testing.assert_close(float(c.oc[0]), oc)
    torch.testing.assert_close(float(c.ad[0]), (yc - oc) / yc * (1 - abs(yc - oc)))
    torch.testing.assert_close(float(c.avx[0]), _expected_avx(x, masked, yc, oc, False, True),
                               rtol=1e-5, atol=1e-6)
    # the same miss with correlated maps (Mn = Mx): not class-sensitive -> AVX 0
    c = avx_components(model, x, right[None], right[None])
    assert not bool(c.class_sensitive[0]) and c.avx[0] == 0


def test_avx_batch_equals_single_and_normalize_masks_pixels():
    model = LeftHalf()
    x = torch.cat([_image(), _image().flip(-1), _image() * 0.5])
    ones, zeros, left, right, top = _halves()
    m1 = torch.stack([left * 0.7, right, ones])
    m2 = torch.stack([top, top.T, right])
    batch = avx(model, x, m1, m2, batch_size=2)
    single = torch.cat([avx(model, x[i:i + 1], m1[i:i + 1], m2[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, single)
    # normalize=(mean, std): the mask multiplies the pixel-space image, so a model of
    # normalised inputs that undoes the normalisation scores as the pixel model does
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.3, 0.25]

    class Denorm(nn.Module):     # LeftHalf on pixel values, fed normalised inputs
        def forward(self, t):
            return model(t * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1))

    torch.testing.assert_close(avx(Denorm(), x, m1, m2, normalize=(mean, std)), batch)
    with pytest.raises(ValueError, match="pixel-space"):
        avx(model, x * 3, m1, m2, normalize=(mean, std))
    # normalize=None and images outside [0, 1]: rescaled per image, scores stay in [0, 1]
    v = avx(model, 4 * x - 1, m1, m2)
    assert bool(((v >= 0) & (v <= 1)).all())


def test_pearson_nan_on_constant_maps():
    a = torch.rand(2, 5, 5)
    r = pearson(a, torch.stack([a[0] * 2 + 1, torch.zeros(5, 5)]))
    torch.testing.assert_close(r[0], torch.tensor(1.0, dtype=torch.float64))
    assert math.isnan(float(r[1]))


# -- ADVISE -------------------------------------------------------------------------
class Shifted(nn.Module):
    """conv -> ReLU -> conv -> (+2, the target) -> GAP -> fc: every target
    activation is > 1, so no channel has a KDE sample in [0, 1]: all 0 peaks."""

    def __init__(self, classes=6):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(8, 6, 3, stride=2, padding=1))
        self.shift = nn.Identity()
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        a = self.shift(torch.relu(self.features(x)) + 2)
        return self.fc(a.mean(dim=(2, 3)))


def _softmax_target(c):
    return lambda row: row.softmax(0)[c]


def test_groups():
    peaks = torch.tensor([[2, 0, 2, 5], [1, 1, 1, 1]])
    group_of, counts = ADVISE.groups(peaks)
    assert counts.tolist() == [[0, 2, 5], [1, -1, -1]]
    assert group_of.tolist() == [[1, 0, 1, 2], [0, 0, 0, 0]]


def test_one_peak_count_equals_gradcam_of_the_probability():
    torch.manual_seed(0)
    model = Shifted().eval()
    x = torch.rand(3, 3, 20, 20)
    with ADVISE(model, "shift", upsample="bilinear") as cam:
        maps = cam(x)
        e = cam.last.extra
    c1 = cam.last.targets
    assert e["peaks"].eq(0).all() and e["candidate_peak_counts"].tolist() == [[0]] * 3
    assert e["best"].tolist() == [0, 0, 0] and e["scored"].all()
    with fastcam.GradCAM(model, "shift") as g:
        expected = g(x, [_softmax_target(int(c)) for c in c1])
        w_expected = g.last.weights[0]
    torch.testing.assert_close(maps, expected)
    torch.testing.assert_close(e["candidates"][:, 0], expected)
    torch.testing.assert_close(cam.last.weights[0], w_expected)
    with fastcam.GradCAM(model, "shift") as g:
        torch.testing.assert_close(e["candidates_c2"][:, 0],
                                   g(x, [_softmax_target(int(c)) for c in e["c2"]]))
    # bicubic (the official default): min-max at low resolution, bicubic, clamp
    with ADVISE(model, "shift") as cam:
        maps = cam(x)
    low = torch.relu(torch.einsum("bk,bkhw->bhw", w_expected, cam.last.activations[0]))
    up = F.interpolate(minmax(low)[:, None], size=(20, 20), mode="bicubic", align_corners=False)
    torch.testing.assert_close(maps, up[:, 0].clamp(0, 1))


def _resnet18():
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).eval()


def test_candidates_are_grouped_gradcams_and_best_has_top_avx():
    model = _resnet18()
    x = torch.rand(2, 3, 64, 64)
    with ADVISE(model, "layer3", normalize=IMNET) as cam:
        maps = cam(x)
        rec = cam.last
    e = rec.extra
    # the oracle: a hook, two plain gradients, the KDE op, one Grad-CAM per group
    store = {}
    h = model.layer3.register_forward_hook(lambda m, i, o: store.__setitem__("A", o))
    try:
        probs = model(torchvision.transforms.functional.normalize(x, *IMNET)).softmax(1)
    finally:
        h.remove()
    A = store["A"]
    top2 = probs.topk(2, dim=1).indices
    assert rec.targets.tolist() == top2[:, 0].tolist() and e["c2"].tolist() == top2[:, 1].tolist()
    grads = [torch.autograd.grad(probs.gather(1, top2[:, j:j + 1]).sum(), A, retain_graph=True)[0]
             for j in range(2)]
    A = A.detach()
    peaks = adaptive_kde(A.flatten(2))[1]
    assert torch.equal(e["peaks"], peaks)
    G = e["candidates"].shape[1]
    assert G >= 2                                  # several groups: a real test
    for b in range(2):
        counts = peaks[b].unique().tolist()
        assert e["candidate_peak_counts"][b].tolist() == counts + [-1] * (G - len(counts))
        for g, p in enumerate(counts):
            sel = peaks[b] == p
            for j, key in enumerate(["candidates", "candidates_c2"]):
                wk = grads[j][b].mean(dim=(1, 2)) * sel
                low = torch.relu(torch.einsum("k,khw->hw", wk, A[b]))
                up = F.interpolate(minmax(low)[None, None], size=(64, 64), mode="bicubic",
                                   align_corners=False)[0, 0].clamp(0, 1)
                torch.testing.assert_close(e[key][b, g], up, atol=1e-5, rtol=1e-4)
        scored = e["scored"][b]
        assert scored.sum() >= 1 and torch.isnan(e["avx"][b][~scored]).all()
        best = int(e["best"][b])
        assert e["avx"][b, best] == e["avx"][b][scored].max()
        torch.testing.assert_close(maps[b], e["candidates"][b, best])
    assert set(e["seconds"]) >= {"network", "kde", "avx"}
    # the AVX table equals the metric on the chosen pair
    bi = torch.arange(2)
    torch.testing.assert_close(
        e["avx"][bi, e["best"]],
        avx(model, x, e["candidates"][bi, e["best"]], e["candidates_c2"][bi, e["best"]],
            normalize=IMNET))


def test_batch_equals_single_image_calls():
    # float64: batched and single-image convolutions differ by rounding only, far
    # below what could move a KDE peak count
    model = _resnet18().double()
    x = torch.rand(3, 3, 64, 64, dtype=torch.float64)
    cam = ADVISE(model, "layer3", normalize=IMNET, batch_size=4)
    maps = cam(x)
    e = cam.last.extra
    for b in range(3):
        single = cam(x[b:b + 1])
        s = cam.last.extra
        G = s["candidates"].shape[1]
        assert torch.equal(s["peaks"][0], e["peaks"][b])
        assert s["candidate_peak_counts"][0].tolist() == e["candidate_peak_counts"][b, :G].tolist()
        assert (e["candidate_peak_counts"][b, G:] == -1).all()
        torch.testing.assert_close(single[0], maps[b], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(s["candidates"][0], e["candidates"][b, :G], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(s["avx"][0], e["avx"][b, :G], atol=1e-5, rtol=1e-4, equal_nan=True)
        assert int(s["best"][0]) == int(e["best"][b])


def test_targets_override_c1_and_errors():
    model = _resnet18()
    x = torch.rand(2, 3, 64, 64)
    cam = ADVISE(model, "layer4", upsample="bilinear", minmax_channels=True)
    cam(x, [3, 3])
    probs = cam.last.logits.softmax(1)
    assert cam.last.targets.tolist() == [3, 3]
    others = probs.clone()
    others[:, 3] = -1
    assert cam.last.extra["c2"].tolist() == others.argmax(1).tolist()
    torch.testing.assert_close(cam.last.scores, probs[:, 3])
    with pytest.raises(TypeError, match="class-index"):
        cam(x, [_softmax_target(1)] * 2)
    with pytest.raises(ValueError, match="one target layer"):
        ADVISE(model, ["layer3", "layer4"])(x)
    with pytest.raises(ValueError, match="upsample"):
        ADVISE(model, "layer4", upsample="nearest")
