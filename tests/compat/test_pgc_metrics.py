"""pytorch-grad-cam drop-in metrics: parity with grad-cam 1.5.7 (confidence change,
ROAD with noise 0), the batched imputation against a direct sparse solve of the ROAD
system, hand-checked tiny cases, noise statistics and input errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from fastcam.compat.pytorch_grad_cam import metrics as ours
from fastcam.compat.pytorch_grad_cam.metrics.perturbation_confidence import otsu_keep, percentile_threshold
from fastcam.perturbation import noisy_linear_imputation
from fastcam.perturbation.noisy_linear_imputation import linear_imputation

B, SIZE = 3, 72
TIGHT = dict(noise=0.0, tol=1e-7, max_iter=200)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    x = torch.randn(B, 3, SIZE, SIZE)
    low = torch.rand(B, 1, 5, 5)
    cams = F.interpolate(low, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    lo, hi = cams.amin((1, 2), keepdim=True), cams.amax((1, 2), keepdim=True)
    cams = ((cams - lo) / (hi - lo)).numpy().astype(np.float32)
    with torch.no_grad():
        classes = model(x).argmax(1).tolist()
    return model, x, cams, classes


def _gc_targets(classes):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    return [ClassifierOutputTarget(c) for c in classes]


@pytest.fixture
def gc():
    return pytest.importorskip("pytorch_grad_cam")


# --------------------------------------------------------------- confidence change

@pytest.mark.parametrize("name", ["CamMultImageConfidenceChange", "DropInConfidence", "IncreaseInConfidence"])
def test_cam_mult_parity(gc, setup, name):
    from pytorch_grad_cam.metrics import cam_mult_image as ref_mod
    model, x, cams, classes = setup
    tg = _gc_targets(classes)
    ref = getattr(ref_mod, name)()(x, cams, tg, model)
    got = getattr(ours, name)(batch_size=2)(x, cams, tg, model)
    assert got.dtype == np.float32 and got.shape == (B,)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)

    scores, vis = getattr(ours, name)()(x, cams, tg, model, return_visualization=True)
    np.testing.assert_allclose(scores, ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(vis, x * torch.from_numpy(cams)[:, None])
    if name == "CamMultImageConfidenceChange":
        ref_scores, ref_vis = ref_mod.CamMultImageConfidenceChange()(x, cams, tg, model, return_visualization=True)
        torch.testing.assert_close(vis, ref_vis)
    else:  # grad-cam negates / compares the (scores, images) tuple: we return it instead
        with pytest.raises(TypeError):
            getattr(ref_mod, name)()(x, cams, tg, model, return_visualization=True)


def test_raw_difference_and_softmax_target(gc, setup):
    from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
    model, x, cams, classes = setup
    tg = [ClassifierOutputSoftmaxTarget(c) for c in classes]
    ref = CamMultImageConfidenceChange()(x, cams, tg, model, return_diff=False)
    got = ours.CamMultImageConfidenceChange()(x, cams, tg, model, return_diff=False)
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- ROAD

@pytest.mark.parametrize("name,percentile", [("ROADMostRelevantFirst", 80), ("ROADLeastRelevantFirst", 20),
                                             ("ROADMostRelevantFirst", 35), ("ROADLeastRelevantFirst", 90)])
def test_road_single_parity(gc, setup, name, percentile):
    from pytorch_grad_cam.metrics import road as ref_mod
    model, x, cams, classes = setup
    tg = _gc_targets(classes)
    ref_metric = getattr(ref_mod, name)(percentile)
    ref_metric.perturbation.imputer.noise = 0.0            # deterministic reference
    ref, ref_vis = ref_metric(x, cams, tg, model, return_visualization=True)
    got, vis = getattr(ours, name)(percentile, **TIGHT)(x, cams, tg, model, return_visualization=True)
    assert got.dtype == np.float32 and got.shape == (B,)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    torch.testing.assert_close(vis, ref_vis, atol=1e-5, rtol=0)


@pytest.fixture
def gc_noise_free(gc, monkeypatch):
    from pytorch_grad_cam.metrics import road as ref_mod
    monkeypatch.setattr(ref_mod.NoisyLinearImputer.__init__, "__defaults__", (0.0, ref_mod.neighbors_weights))
    return ref_mod


@pytest.mark.parametrize("name", ["ROADMostRelevantFirstAverage", "ROADLeastRelevantFirstAverage", "ROADCombined"])
def test_road_average_parity(gc_noise_free, setup, name):
    model, x, cams, classes = setup
    tg = _gc_targets(classes)
    percentiles = [10, 30, 50, 70, 90] if name != "ROADCombined" else [10, 20, 30, 40, 50, 60, 70, 80, 90]
    ref = getattr(gc_noise_free, name)(percentiles)(x, cams, tg, model)
    metric = getattr(ours, name)(percentiles, batch_size=4, chunk_elements=5 * 3 * SIZE * SIZE, **TIGHT)
    got = metric(x, cams, tg, model)
    assert got.dtype == np.float32 and got.shape == (B,)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)

    scores, vis = metric(x, cams, tg, model, return_visualization=True)
    np.testing.assert_allclose(scores, got, atol=1e-6, rtol=0)
    lead = (2,) if name == "ROADCombined" else ()
    assert vis.shape == lead + (len(percentiles), B, 3, SIZE, SIZE)
    single = gc_noise_free.ROADLeastRelevantFirst if "Least" in name else gc_noise_free.ROADMostRelevantFirst
    _, ref_vis = single(percentiles[1])(x, cams, tg, model, return_visualization=True)
    torch.testing.assert_close(vis[(0,) * len(lead) + (1,)], ref_vis, atol=1e-5, rtol=0)


def test_road_default_noise_statistics(setup):
    model, x, cams, classes = setup
    tg = [lambda out, c=c: out[c] for c in classes]               # any per-sample callable
    gen = torch.Generator().manual_seed(1)
    noisy, vis = ours.ROADMostRelevantFirst(50, generator=gen)(x, cams, tg, model, return_visualization=True)
    _, clean = ours.ROADMostRelevantFirst(50, noise=0.0)(x, cams, tg, model, return_visualization=True)
    removed = ~(torch.from_numpy(cams) < torch.from_numpy(np.percentile(cams.reshape(B, -1), 50, axis=1))[:, None, None])
    delta = (vis - clean).permute(1, 0, 2, 3)                      # (C, B, H, W)
    assert torch.equal(delta[:, ~removed], torch.zeros_like(delta[:, ~removed]))
    eps = delta[:, removed]
    assert abs(eps.std().item() - 0.01) < 5e-4 and abs(eps.mean().item()) < 5e-4
    again = ours.ROADMostRelevantFirst(50, generator=torch.Generator().manual_seed(1))(x, cams, tg, model)
    np.testing.assert_array_equal(noisy, again)


def test_road_auto_percentile_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    torch.manual_seed(3)
    low = torch.rand(4, 1, 6, 6)
    cams = F.interpolate(low, size=(41, 37), mode="bilinear")[:, 0]
    for values in (cams, 1 - cams):
        got = otsu_keep(values).numpy()
        for i, v in enumerate(values.numpy()):
            _, ref = cv2.threshold(np.uint8(v * 255), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            np.testing.assert_array_equal(got[i], ref > 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_percentile_threshold_is_numpy_bit_for_bit(dtype):
    rng = np.random.default_rng(0)
    values = rng.random((5, 17, 23)).astype(dtype)
    values[1, :3] = 0.25                                            # ties
    for q in [0, 10, 33.3, 50, 80, 90, 99.9, 100]:
        got = percentile_threshold(torch.from_numpy(values), q).numpy()
        ref = np.array([np.percentile(v, q) for v in values])
        np.testing.assert_array_equal(got, ref)


def test_errors(setup):
    model, x, cams, classes = setup
    tg = [lambda out, c=c: out[c] for c in classes]
    metric = ours.ROADMostRelevantFirst()
    with pytest.raises(ValueError, match="targets"):
        metric(x, cams, tg[:-1], model)
    with pytest.raises(ValueError, match="shape"):
        metric(x, cams[:, :-1], tg, model)
    with pytest.raises(ValueError, match="shape"):
        ours.DropInConfidence()(x, cams[:-1], tg, model)
    bad = cams.copy()
    bad[0, 3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ours.ROADCombined([50])(x, bad, tg, model)
    with pytest.raises(ValueError, match="weights"):
        ours.NoisyLinearImputer(weighting=[((0, 1), 1.0)])


# ------------------------------------------------------------------- the imputer

_OFFSETS = [(dy, dx, 1 / 6 if dy == 0 or dx == 0 else 1 / 12)
            for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def _direct_solve(img: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The ROAD system built from its definition and solved with SciPy's sparse LU."""
    from scipy.sparse import lil_matrix
    from scipy.sparse.linalg import spsolve
    c, h, w = img.shape
    removed = np.argwhere(~keep)
    index = {tuple(p): k for k, p in enumerate(removed)}
    n = len(removed)
    out = img.astype(np.float64).copy()
    if n == 0:
        return out
    if n == h * w:                    # singular (constants), b = 0: we return the zero solution
        return np.zeros_like(out)
    a = lil_matrix((n, n))
    rhs = np.zeros((n, c))
    for k, (i, j) in enumerate(removed):
        for dy, dx, wt in _OFFSETS:
            y, z = i + dy, j + dx
            if 0 <= y < h and 0 <= z < w:
                a[k, k] += wt
                if keep[y, z]:
                    rhs[k] += wt * img[:, y, z]
                else:
                    a[k, index[(y, z)]] -= wt
    sol = spsolve(a.tocsc(), rhs).reshape(n, c)
    out[:, removed[:, 0], removed[:, 1]] = sol.T
    return out


def _masks(h, w, rng):
    yy, xx = np.mgrid[:h, :w]
    border = (yy == 0) | (xx == w - 1) | ((yy - h // 2) ** 2 + (xx - w // 3) ** 2 < (min(h, w) / 3) ** 2)
    return [~border, rng.random((h, w)) < 0.5, rng.random((h, w)) < 0.1,
            np.eye(h, w, dtype=bool) | (xx == 0)]


@pytest.mark.parametrize("h,w", [(7, 5), (13, 11), (16, 16), (33, 20), (1, 9), (2, 3)])
def test_imputer_matches_direct_solve(h, w):
    rng = np.random.default_rng(h * 100 + w)
    masks = _masks(h, w, rng)
    img = rng.normal(size=(len(masks), 3, h, w))
    ref = np.stack([_direct_solve(img[i], m) for i, m in enumerate(masks)])
    keep = torch.from_numpy(np.stack(masks))
    got64, _ = linear_imputation(torch.from_numpy(img), keep, tol=1e-11, max_iter=300)
    np.testing.assert_allclose(got64.numpy(), ref, atol=1e-8, rtol=0)
    got32 = noisy_linear_imputation(torch.from_numpy(img).float(), keep, noise=0.0, chunk_elements=2 * 3 * h * w)
    np.testing.assert_allclose(got32.numpy(), ref, atol=2e-3, rtol=0)
    one, _ = linear_imputation(torch.from_numpy(img[:1]), keep[:1], tol=1e-11, max_iter=300)  # batch of 1
    np.testing.assert_allclose(one.numpy(), ref[:1], atol=1e-8, rtol=0)


def test_imputer_all_and_none_removed():
    img = torch.randn(2, 3, 9, 8, dtype=torch.float64)
    keep = torch.zeros(2, 9, 8, dtype=torch.bool)
    keep[1] = True
    out, _ = linear_imputation(img, keep)
    assert torch.equal(out[0], torch.zeros_like(out[0]))          # singular, b = 0: the zero solution
    assert torch.equal(out[1], img[1])
    assert torch.equal(linear_imputation(img[1:], keep[1:])[0], img[1:])
    single = torch.randn(1, 1, 1, 1)
    assert torch.equal(linear_imputation(single, torch.zeros(1, 1, 1, dtype=torch.bool))[0], torch.zeros(1, 1, 1, 1))


def test_imputer_hand_checked_3x3():
    v = torch.arange(1.0, 10.0, dtype=torch.float64).reshape(1, 1, 3, 3) ** 2
    centre = torch.ones(1, 3, 3, dtype=torch.bool)
    centre[0, 1, 1] = False
    out, _ = linear_imputation(v, centre, tol=1e-12)
    edges = v[0, 0, 0, 1] + v[0, 0, 1, 0] + v[0, 0, 1, 2] + v[0, 0, 2, 1]
    corners = v[0, 0, 0, 0] + v[0, 0, 0, 2] + v[0, 0, 2, 0] + v[0, 0, 2, 2]
    assert out[0, 0, 1, 1].item() == pytest.approx((edges / 6 + corners / 12).item(), abs=1e-12)
    corner = torch.ones(1, 3, 3, dtype=torch.bool)
    corner[0, 0, 0] = False                                          # 3 in-image neighbours, weights 5/12
    out, _ = linear_imputation(v, corner, tol=1e-12)
    expect = (v[0, 0, 0, 1] / 6 + v[0, 0, 1, 0] / 6 + v[0, 0, 1, 1] / 12) / (5 / 12)
    assert out[0, 0, 0, 0].item() == pytest.approx(expect.item(), abs=1e-12)
    imputer = ours.NoisyLinearImputer(noise=0.0, tol=1e-12)          # grad-cam's call: (C,H,W), float mask
    assert torch.allclose(imputer(v[0], corner[0].double()), out[0])


def test_imputer_warns_when_not_converged():
    keep = torch.rand(1, 40, 40) < 0.05
    with pytest.warns(RuntimeWarning, match="did not reach"):
        linear_imputation(torch.randn(1, 1, 40, 40), keep, tol=1e-12, max_iter=1)
