"""pytorch-grad-cam's ARCC metrics (metrics.arcc) natively: parity with grad-cam 1.5.7
(ROAD with noise 0), closed forms of Pearson/Complexity, batch == singles, input errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from fastcam.compat.pytorch_grad_cam.grad_cam import GradCAM
from fastcam.compat.pytorch_grad_cam.metrics import arcc as ours

B, SIZE = 2, 64


@pytest.fixture(scope="module", params=["resnet18", "vgg16"])
def setup(request):
    torch.manual_seed(0)
    model = getattr(torchvision.models, request.param)().eval()
    layer = model.layer4[-1] if request.param == "resnet18" else model.features[29]
    x = torch.randn(B, 3, SIZE, SIZE)
    low = torch.rand(B, 1, 4, 4)
    cams = F.interpolate(low, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    lo, hi = cams.amin((1, 2), keepdim=True), cams.amax((1, 2), keepdim=True)
    cams = ((cams - lo) / (hi - lo)).numpy().astype(np.float32)
    with torch.no_grad():
        classes = model(x).argmax(1).tolist()
    return model, layer, x, cams, classes


@pytest.fixture
def gc():
    return pytest.importorskip("pytorch_grad_cam")


def _targets(classes):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    return [ClassifierOutputTarget(c) for c in classes]


def test_pearson_and_complexity_parity(gc):
    from pytorch_grad_cam.metrics import arcc as ref
    rng = np.random.default_rng(0)
    a, b = rng.random((3, 8, 9)).astype(np.float32), rng.random((3, 8, 9)).astype(np.float32)
    got = ours.batch_pearson_coherency(a, b)
    assert isinstance(got, np.ndarray) and got.shape == (3,)
    np.testing.assert_allclose(got, ref.batch_pearson_coherency(a, b), atol=1e-6)
    np.testing.assert_allclose(got, [np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1] for i in range(3)], atol=1e-5)
    np.testing.assert_allclose(ours.batch_pearson_coherency(a, -2 * a + 1), -1, atol=1e-5)
    t = ours.batch_pearson_coherency(torch.from_numpy(a), torch.from_numpy(b))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), got, atol=1e-7)
    np.testing.assert_allclose(ours.Complexity()(a), ref.Complexity()(a), atol=1e-6)
    np.testing.assert_allclose(ours.Complexity()(np.zeros((2, 4, 4))), 0)
    np.testing.assert_allclose(ours.Complexity()(np.ones((2, 4, 4))), 1)


def test_coherency_parity(gc, setup):
    from pytorch_grad_cam import GradCAM as RefGradCAM
    from pytorch_grad_cam.metrics import arcc as ref
    model, layer, x, cams, classes = setup
    tg = _targets(classes)
    want = ref.Coherency()(x, cams, tg, model, RefGradCAM(model, [layer]))
    got = ours.Coherency()(x, cams, tg, model, GradCAM(model, [layer]))
    assert got.dtype == np.float32 and got.shape == (B,)
    np.testing.assert_allclose(got, want, atol=1e-4)
    # the reference base method works too (any callable of input_tensor=, targets=)
    np.testing.assert_allclose(ours.Coherency()(x, cams, tg, model, RefGradCAM(model, [layer])), want, atol=1e-5)


def test_arcc_parity_and_singles(gc, setup, monkeypatch):
    from pytorch_grad_cam import GradCAM as RefGradCAM
    from pytorch_grad_cam.metrics import arcc as ref, road as ref_road
    monkeypatch.setattr(ref_road.NoisyLinearImputer.__init__, "__defaults__", (0.0, ref_road.neighbors_weights))
    model, layer, x, cams, classes = setup
    tg = _targets(classes)
    want = ref.ARCC(RefGradCAM(model, [layer]), road_percentiles=[20, 60])(x, cams, tg, model)
    metric = ours.ARCC(GradCAM(model, [layer]), road_percentiles=[20, 60], noise=0.0, tol=1e-7, max_iter=200)
    got = metric(x, cams, tg, model)
    assert got.dtype == np.float32 and got.shape == (B,)
    np.testing.assert_allclose(got, want, atol=1e-4)
    singles = np.concatenate([metric(x[i:i + 1], cams[i:i + 1], tg[i:i + 1], model) for i in range(B)])
    np.testing.assert_allclose(got, singles, atol=1e-5)


def test_bad_inputs(setup):
    model, layer, x, cams, classes = setup
    from fastcam.compat.pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    tg = [ClassifierOutputTarget(c) for c in classes]
    with pytest.raises(ValueError):
        ours.batch_pearson_coherency(np.zeros((2, 3, 3)), np.zeros((2, 4, 4)))
    with pytest.raises(ValueError):
        ours.Complexity()(np.zeros(4))
    with pytest.raises(ValueError, match="cams must have shape"):
        ours.Coherency()(x, cams[:1], tg, model, GradCAM(model, [layer]))
    with pytest.raises(ValueError, match="targets"):
        ours.ARCC(GradCAM(model, [layer]))(x, cams, tg[:1], model)
    with pytest.raises(TypeError):
        ours.ARCC(None)
