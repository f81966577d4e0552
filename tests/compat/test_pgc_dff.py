"""Deep feature factorization natively: the torch NMF against sklearn's NMF as grad-cam
1.5.7 uses it (same factors within 1e-4, same reconstruction error), dff and
DeepFeatureFactorization against grad-cam's (ResNet-18 / VGG16 random init, batch 2),
the caller's array unchanged, bad input."""
import functools
import warnings

import numpy as np
import pytest
import torch
import torchvision

from fastcam.compat.pytorch_grad_cam.feature_factorization.deep_feature_factorization import (
    DeepFeatureFactorization, dff, nmf, run_dff_on_image)

SIZE = 96


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # sklearn's and our non-convergence warnings
        yield


@functools.lru_cache(maxsize=None)
def _model(arch):
    torch.manual_seed(0)
    return getattr(torchvision.models, arch)().eval()


def _layer(arch, model):
    return model.features[-1] if arch == "vgg16" else model.layer4[-1]


@functools.lru_cache(maxsize=None)
def _activations(arch):
    model = _model(arch)
    torch.manual_seed(1)
    x = torch.randn(2, 3, SIZE, SIZE)
    out = []
    h = _layer(arch, model).register_forward_hook(lambda m, i, o: out.append(o.detach().clone()))
    with torch.no_grad():
        model(x)
    h.remove()
    return x, out[0].numpy()


def test_nmf_matches_sklearn():
    sklearn = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(0)
    X = (rng.random((40, 3)) @ rng.random((3, 30)) + 0.01 * rng.random((40, 30))).astype(np.float32)
    ref = sklearn.NMF(n_components=3, init="random", random_state=0)
    W_ref = ref.fit_transform(X)
    W, H, n_iter = nmf(torch.from_numpy(X), 3)
    assert n_iter == ref.n_iter_
    np.testing.assert_allclose(W.numpy(), W_ref, atol=1e-4)
    np.testing.assert_allclose(H.numpy(), ref.components_, atol=1e-4)
    assert (W >= 0).all() and (H >= 0).all()
    err = np.linalg.norm(X - W.numpy() @ H.numpy())
    assert abs(err - ref.reconstruction_err_) < 1e-4 * max(1.0, ref.reconstruction_err_)


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("arch", ["resnet18", "vgg16"])
def test_dff_parity(arch, k):
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.feature_factorization.deep_feature_factorization import dff as theirs
    _, A = _activations(arch)
    A = A.copy()
    A[0, 0, 0, 0] = np.nan
    before = A.copy()
    want_c, want_e = theirs(A.copy(), k)
    got_c, got_e = dff(A, k)
    np.testing.assert_array_equal(A, before)          # grad-cam zeroes the NaN in the caller's array
    assert got_c.dtype == np.float32 and got_c.shape == (A.shape[1], k)
    assert got_e.shape == (2, k) + A.shape[2:]
    np.testing.assert_allclose(got_c, want_c, atol=1e-4)
    np.testing.assert_allclose(got_e, want_e, atol=1e-4)
    t_c, t_e = dff(torch.from_numpy(A), k)
    assert isinstance(t_c, torch.Tensor)
    np.testing.assert_allclose(t_c.numpy(), got_c, atol=1e-6)


@pytest.mark.parametrize("arch", ["resnet18", "vgg16"])
def test_deep_feature_factorization_parity(arch):
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.feature_factorization.deep_feature_factorization import DeepFeatureFactorization as Theirs
    model = _model(arch)
    x, _ = _activations(arch)
    torch.manual_seed(3)
    head = model.fc if arch == "resnet18" else torch.nn.Linear(512, 10)    # a classifier of the concepts
    theirs = Theirs(model, _layer(arch, model), computation_on_concepts=head)
    want = theirs(x, n_components=4)
    theirs.activations_and_grads.release()
    got = DeepFeatureFactorization(model, _layer(arch, model), computation_on_concepts=head)(x, n_components=4)
    assert len(got) == 3 and len(got[1]) == 2 and got[1][0].shape == (4, SIZE, SIZE)
    np.testing.assert_allclose(got[0], want[0], atol=1e-4)
    for g, w in zip(got[1], want[1], strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4)
    np.testing.assert_allclose(got[2], want[2], atol=1e-3 * max(1.0, np.abs(want[2]).max()))
    assert all(not m._forward_hooks for m in model.modules())
    concepts, maps = DeepFeatureFactorization(model, _layer(arch, model))(x, n_components=4)
    np.testing.assert_allclose(concepts, want[0], atol=1e-4)


def test_run_dff_on_image():
    model = _model("resnet18")
    x, _ = _activations("resnet18")
    img = (np.random.default_rng(0).random((SIZE, SIZE, 3)) * 255).astype(np.uint8)
    with pytest.raises(ValueError, match="id2label"):
        run_dff_on_image(model, model.layer4[-1], model.fc, img, x[0])
    model.config = type("Config", (), {"id2label": {i: f"class {i}" for i in range(1000)}})()
    try:
        picture = run_dff_on_image(model, model.layer4[-1], model.fc, img, x[0], n_components=3)
    finally:
        del model.config
    assert picture.dtype == np.uint8 and picture.shape[0] == SIZE and picture.shape[1] > 2 * SIZE - 1


def test_bad_input():
    with pytest.raises(ValueError):
        dff(np.zeros((2, 3, 4)), 2)
    with pytest.raises(ValueError):
        nmf(torch.rand(4, 4), 0)
    with pytest.raises(ValueError, match="non-negative"):
        nmf(-torch.rand(4, 4), 2)
    model = _model("resnet18")
    with pytest.raises(TypeError):
        DeepFeatureFactorization(model, "layer4")
    with pytest.raises(ValueError):
        DeepFeatureFactorization(model, model.layer4)(torch.randn(3, SIZE, SIZE))
