"""The randomisation sanity check (Adebayo et al. 2018): the similarities against
SciPy and scikit-image, a method that ignores the model keeps similarity 1,
Grad-CAM's falls, cascade/independent re-initialise what they say, and the
user's model is never changed."""
import numpy as np
import pytest
import torch
from torch import nn

import fastcam
from fastcam.metrics import randomisation_sanity, spearman, ssim
from fastcam.metrics.sanity import parameter_layers


def test_spearman_matches_scipy_with_ties_and_is_nan_for_a_constant_map():
    scipy_stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 9, 7, generator=g)
    b = (torch.rand(3, 9, 7, generator=g) * 4).round() / 4          # many ties
    a[1, :3] = 0.5                                                    # ties in a too
    got = spearman(a, b)
    for i in range(3):
        want = scipy_stats.spearmanr(a[i].flatten().numpy(), b[i].flatten().numpy()).statistic
        assert abs(float(got[i]) - want) < 1e-12
    assert torch.isnan(spearman(a[:1], torch.zeros(1, 9, 7))).all()
    assert float(spearman(a[:1], a[:1])[0]) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 32, 27, generator=g)
    b = (a + 0.2 * torch.randn(2, 32, 27, generator=g)).clamp(0, 1)
    got = ssim(a, b)
    for i in range(2):
        want = metrics.structural_similarity(a[i].double().numpy(), b[i].double().numpy(), gaussian_weights=True,
                                             sigma=1.5, use_sample_covariance=False, data_range=1.0)
        assert abs(float(got[i]) - want) < 1e-3
    assert torch.allclose(ssim(a, a), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="window"):
        ssim(a[:, :5, :5], b[:, :5, :5])


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()


def sobel_edges(model, x, targets):
    """An edge detector on the input: ignores the model entirely."""
    gray = x.mean(1, keepdim=True)
    kx = torch.tensor([[-1., 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3)
    gx = nn.functional.conv2d(gray, kx, padding=1)
    gy = nn.functional.conv2d(gray, kx.transpose(2, 3), padding=1)
    mag = (gx * gx + gy * gy).sqrt()[:, 0]
    return mag / mag.amax(dim=(1, 2), keepdim=True)


@pytest.mark.parametrize("layers", ["cascade", "independent"])
def test_a_method_that_ignores_the_model_keeps_similarity_one(layers):
    model = _net()
    x = torch.rand(2, 3, 24, 24)
    res = randomisation_sanity(sobel_edges, model, x, [0, 1], layers=layers)
    assert res.spearman.shape == (4, 2) and res.ssim.shape == (4, 2)     # trained + 3 layers
    torch.testing.assert_close(res.spearman, torch.ones(4, 2, dtype=torch.float64))
    torch.testing.assert_close(res.ssim, torch.ones(4, 2, dtype=torch.float64))
    assert res.randomised == [[], ["6"], ["2"], ["0"]]                  # from the top


def test_grad_cam_similarity_falls_on_the_real_model_and_the_model_is_unchanged():
    from fastcam.data import load_photos

    model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
    x, _ = load_photos(["chelsea", "coffee"])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = [p for p in model.parameters()]
    rng = torch.get_rng_state()
    res = randomisation_sanity("gradcam", model, x, [281, 967], steps=3, target_layers="_head_act",
                               normalize=model.normalization)
    s, m = res.mean("spearman"), res.mean("ssim")
    assert float(s[0]) == pytest.approx(1.0, abs=1e-6) and float(m[0]) == pytest.approx(1.0, abs=1e-6)
    assert float(s[-1]) < 0.5 and float(m[-1]) < 0.5          # fully randomised: the maps change
    assert float(s[1]) < 0.999                                 # already after the top third
    # the user's model: same parameter objects, same values, still in eval mode, RNG untouched
    assert [p for p in model.parameters()] == params and not model.training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(torch.get_rng_state(), rng)
    assert sum(len(g) for g in res.randomised) == len(parameter_layers(model))


def test_cascade_keeps_earlier_steps_random_and_independent_restores_them():
    model = _net()
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []

    def probe(m, x, targets):                  # which layers differ from the trained weights
        now = m.state_dict()
        seen.append(sorted({k.split(".")[0] for k in now if not torch.equal(now[k], trained[k])}))
        return sobel_edges(m, x, targets)

    x = torch.rand(1, 3, 16, 16)
    randomisation_sanity(probe, model, x, [0], layers="cascade")
    assert seen == [[], [], ["6"], ["2", "6"], ["0", "2", "6"]]     # reference, step 0, steps 1–3
    seen.clear()
    randomisation_sanity(probe, model, x, [0], layers="independent", steps=["6", "0"])
    assert seen == [[], [], ["6"], ["0"]]


def test_errors():
    model = _net()
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match="cascade"):
        randomisation_sanity(sobel_edges, model, x, [0], layers="top")
    with pytest.raises(ValueError, match="no module"):
        randomisation_sanity(sobel_edges, model, x, [0], steps=["nope"])
    with pytest.raises(ValueError, match="unknown method"):
        randomisation_sanity("nomethod", model, x, [0])
