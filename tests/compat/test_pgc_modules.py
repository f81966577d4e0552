"""Every public module path and name of grad-cam 1.5.7 under fastcam.compat.pytorch_grad_cam.

The walk: for each module of pytorch-grad-cam and each public class/function it
defines, ``importlib.import_module("fastcam.compat." + module)`` works and the
name is there — natively (no warning, not grad-cam's object) or delegated to
grad-cam (its very object, with the warning). Then the parity of the utilities
fastcam implements natively against grad-cam's own functions.
"""
import copy
import importlib
import inspect
import pkgutil
import sys
import warnings
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

pgc = pytest.importorskip("pytorch_grad_cam")
cv2 = pytest.importorskip("cv2")
import matplotlib  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from pytorch_grad_cam.utils import find_layers as their_layers  # noqa: E402
from pytorch_grad_cam.utils import image as their_image  # noqa: E402
from pytorch_grad_cam.utils import model_targets as their_targets  # noqa: E402
from pytorch_grad_cam.utils import reshape_transforms as their_rt  # noqa: E402
from pytorch_grad_cam.utils import svd_on_activations as their_svd  # noqa: E402

from fastcam.compat.pytorch_grad_cam.utils import find_layers as our_layers  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils import image as our_image  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils import model_targets as our_targets  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils import reshape_transforms as our_rt  # noqa: E402
from fastcam.compat.pytorch_grad_cam.utils import svd_on_activations as our_svd  # noqa: E402

#: the utilities this front-end implements itself (they must never be delegated)
NATIVE_UTILITIES = {
    "utils.image": {"create_labels_legend", "show_factorization_on_image",
                    "scale_accross_batch_and_channels"},
    "utils.model_targets": {"FasterRCNNBoxScoreTarget", "FinerWeightedTarget"},
    "utils.reshape_transforms": {"fasterrcnn_reshape_transform"},
    "utils.svd_on_activations": {"get_2d_projection_kernel", "get_2d_projection_with_sign_correction"},
    "utils.find_layers": {"replace_layer_recursive", "replace_all_layer_type_recursive",
                          "find_layer_types_recursive", "find_layer_predicate_recursive"},
    "ablation_cam_multilayer": {"replace_layer_recursive"},
}


def _their_public_names():
    """(module name, [public classes/functions it defines]) for every grad-cam module."""
    for info in pkgutil.walk_packages(pgc.__path__, pgc.__name__ + "."):
        module = importlib.import_module(info.name)
        names = [n for n, obj in vars(module).items()
                 if not n.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
                 and obj.__module__ == info.name]
        yield info.name, names


THEIRS = list(_their_public_names())


def _delegated(module):
    return getattr(getattr(module, "__getattr__", None), "delegated", frozenset())


@pytest.mark.parametrize("modname,names", THEIRS, ids=[m for m, _ in THEIRS])
def test_every_grad_cam_module_and_name_is_here(modname, names):
    theirs = importlib.import_module(modname)
    ours = importlib.import_module("fastcam.compat." + modname)
    delegated = _delegated(ours)
    assert delegated <= set(names), "only grad-cam's own names of the module are delegated"
    native = NATIVE_UTILITIES.get(modname.removeprefix("pytorch_grad_cam."), set())
    assert not native & delegated
    for name in delegated:                  # forget the cached objects: each access below is a first one
        vars(ours).pop(name, None)
    for name in names:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            value = getattr(ours, name)
        messages = [str(w.message) for w in record if "does not implement" in str(w.message)]
        if name in delegated:
            assert value is getattr(theirs, name)
            assert messages == [f"fastcam does not implement {name}: this is pytorch-grad-cam's own "
                                f"{'class' if inspect.isclass(value) else 'function'} "
                                "(its speed, its conventions)"]
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                assert getattr(ours, name) is value           # warned once, then cached
        else:
            assert messages == []
            assert value is not getattr(theirs, name)
            assert value.__module__.startswith("fastcam.")
    star = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(f"from fastcam.compat.{modname} import *", star)
    assert set(names) <= set(star)


def test_the_walk_saw_the_modules_that_scripts_import():
    walked = {m for m, _ in THEIRS}
    for modname in ["ablation_layer", "eigen_cam", "utils.find_layers", "metrics.arcc", "sess",
                    "feature_factorization.deep_feature_factorization", "guided_backprop"]:
        assert f"pytorch_grad_cam.{modname}" in walked
    assert len(THEIRS) == 38 and sum(len(n) for _, n in THEIRS) == 80     # grad-cam 1.5.7


def test_submodules_are_attributes_of_the_package():
    import fastcam.compat.pytorch_grad_cam as fc
    assert fc.eigen_cam.__name__ == "fastcam.compat.pytorch_grad_cam.eigen_cam"
    assert fc.feature_factorization.deep_feature_factorization.__name__.endswith("deep_feature_factorization")
    assert fc.utils.find_layers is our_layers
    with pytest.raises(AttributeError, match="NoSuchModule"):
        fc.feature_factorization.NoSuchModule
    with pytest.raises(AttributeError, match="NoSuch"):
        fc.eigen_cam.NoSuch


def test_without_grad_cam_a_delegated_name_says_to_install_it(monkeypatch):
    import fastcam.compat.pytorch_grad_cam as fc
    from fastcam.compat.pytorch_grad_cam import ablation_layer, fem, fullgrad_cam
    for key in [k for k in sys.modules if k == "pytorch_grad_cam" or k.startswith("pytorch_grad_cam.")]:
        monkeypatch.setitem(sys.modules, key, None)        # "not installed"; restored afterwards
    monkeypatch.delitem(vars(ablation_layer), "AblationLayerFasterRCNN", raising=False)
    monkeypatch.delitem(vars(fc), "AblationLayerFasterRCNN", raising=False)
    with pytest.raises(ImportError, match="install grad-cam"):
        ablation_layer.AblationLayerFasterRCNN
    for native in (fem.FEM, fullgrad_cam.FullGrad, ablation_layer.AblationLayer):
        assert native.__module__.startswith("fastcam.")      # native: no grad-cam needed
    with pytest.raises(ImportError, match="install grad-cam"):
        exec("from fastcam.compat.pytorch_grad_cam import AblationLayerFasterRCNN", {})
    assert fc.HiResCAM.__module__.startswith("fastcam.")      # native: no grad-cam needed
    # native names do not need grad-cam
    assert our_targets.FinerWeightedTarget(0, [1], 1.0)(torch.tensor([1.0, 2.0])).shape == ()


def test_a_missing_dependency_of_grad_cam_is_not_reported_as_grad_cam_missing(monkeypatch):
    from fastcam.compat.pytorch_grad_cam import _delegate, ablation_layer

    def import_module(name):
        raise ModuleNotFoundError("No module named 'ttach'", name="ttach")

    monkeypatch.setattr(_delegate, "importlib", SimpleNamespace(import_module=import_module,
                                                                util=importlib.util))
    monkeypatch.delitem(vars(ablation_layer), "AblationLayerFasterRCNN", raising=False)
    with pytest.raises(ModuleNotFoundError, match="ttach"):
        ablation_layer.AblationLayerFasterRCNN


# -- targets -------------------------------------------------------------------------


def _detections(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 50
    wh = 10 + torch.rand(n, 2, generator=g) * 30
    return {"boxes": torch.cat([xy, xy + wh], 1).requires_grad_(),
            "labels": torch.randint(1, 4, (n,), generator=g),
            "scores": torch.rand(n, generator=g).requires_grad_()}


@pytest.mark.parametrize("jitter,threshold", [(0.0, 0.5), (3.0, 0.5), (8.0, 0.7), (3.0, 0.0)])
def test_fasterrcnn_box_score_target_matches(jitter, threshold):
    det = _detections()
    ref_boxes = det["boxes"].detach().numpy()[[0, 2, 3, 5]] + jitter
    ref_labels = det["labels"].numpy()[[0, 2, 3, 5]].copy()
    ref_labels[1] += 1                                   # one reference whose class changed
    results = []
    for module in (our_targets, their_targets):
        out = {k: v.detach().clone().requires_grad_(v.requires_grad) for k, v in det.items()}
        score = module.FasterRCNNBoxScoreTarget(ref_labels, ref_boxes, threshold)(out)
        if score.requires_grad:             # theirs has no graph when no box matches
            score.sum().backward()
        grads = [torch.zeros_like(out[k]) if out[k].grad is None else out[k].grad
                 for k in ("boxes", "scores")]
        results.append((score.detach(), *grads))
    for ours, theirs in zip(*results):
        assert ours.shape == theirs.shape
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert (results[0][0].item() > 0) == (jitter < 8)


def test_fasterrcnn_box_score_target_edge_cases():
    det = _detections()
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long),
             "scores": torch.zeros(0)}
    for module in (our_targets, their_targets):
        assert module.FasterRCNNBoxScoreTarget([1], np.array([[0, 0, 5, 5.0]]))(empty).tolist() == [0.0]
    ours = our_targets.FasterRCNNBoxScoreTarget([], np.zeros((0, 4)))(det)
    theirs = their_targets.FasterRCNNBoxScoreTarget([], np.zeros((0, 4)))(det)
    assert ours.tolist() == theirs.tolist() == [0.0]
    boxes = [torch.tensor([0.0, 0, 20, 20]), torch.tensor([5.0, 5, 30, 30])]   # a list of tensors
    assert our_targets.FasterRCNNBoxScoreTarget([1, 2], boxes)(det).shape == (1,)
    with pytest.raises(ValueError, match="2 labels for 1 bounding boxes"):
        our_targets.FasterRCNNBoxScoreTarget([1, 2], np.array([[0, 0, 5, 5.0]]))
    with pytest.raises(ValueError, match=r"\(M, 4\)"):
        our_targets.FasterRCNNBoxScoreTarget([1], np.array([0, 0, 5.0]))


@pytest.mark.parametrize("shape", [(10,), (4, 10)])
@pytest.mark.parametrize("others,alpha", [([3], 1.0), ([1, 4, 7], 0.6), ([2, 2, 9], 2.0)])
def test_finer_weighted_target_matches(shape, others, alpha):
    y = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    ours = our_targets.FinerWeightedTarget(5, others, alpha)(y)
    theirs = their_targets.FinerWeightedTarget(5, others, alpha)(y)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="at least one comparison"):
        our_targets.FinerWeightedTarget(5, [], alpha)


def test_fasterrcnn_reshape_transform_matches():
    g = torch.Generator().manual_seed(2)
    fpn = OrderedDict((k, torch.randn(2, 8, s, s + 3, generator=g))
                      for k, s in [("0", 40), ("1", 20), ("2", 10), ("3", 5), ("pool", 3)])
    ours, theirs = our_rt.fasterrcnn_reshape_transform(fpn), their_rt.fasterrcnn_reshape_transform(fpn)
    assert ours.shape == theirs.shape == (2, 40, 3, 6)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="'pool'"):
        our_rt.fasterrcnn_reshape_transform({"0": fpn["0"]})


# -- svd_on_activations -------------------------------------------------------------


def _activations(shape, seed=0):
    a = np.maximum(np.random.default_rng(seed).standard_normal(shape), 0).astype(np.float32)
    a[0, 1, 0, 0] = np.nan                              # NaNs count as 0 in both
    return a


def _close_to_float32(ours, theirs):
    """Equal up to float32 rounding of grad-cam's own computation: 1e-5 of the scale."""
    assert ours.dtype == theirs.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5 * max(1.0, np.abs(theirs).max()))


@pytest.mark.parametrize("shape", [(3, 8, 7, 7), (2, 16, 9, 11), (2, 8, 15, 15)])   # 225: ARPACK there
@pytest.mark.parametrize("kernel,gamma", [("sigmoid", None), ("sigmoid", 0.3), ("linear", None),
                                          ("poly", None), ("poly", 0.2), ("rbf", None),
                                          ("rbf", 0.5), ("cosine", None)])
def test_kernel_projection_matches(shape, kernel, gamma):
    a = _activations(shape)
    theirs = their_svd.get_2d_projection_kernel(a, kernel=kernel, gamma=gamma)
    ours = our_svd.get_2d_projection_kernel(a, kernel=kernel, gamma=gamma)
    _close_to_float32(ours, theirs)
    as_tensor = our_svd.get_2d_projection_kernel(torch.from_numpy(a), kernel=kernel, gamma=gamma)
    np.testing.assert_allclose(as_tensor.numpy(), ours, atol=1e-6)
    with pytest.raises(ValueError, match="unknown kernel"):
        our_svd.get_2d_projection_kernel(a, kernel="precomputed")


@pytest.mark.parametrize("shape", [(4, 8, 7, 7), (2, 32, 14, 14), (3, 5, 6, 4)])
def test_sign_corrected_projection_matches(shape):
    a = _activations(shape, seed=3)
    theirs = their_svd.get_2d_projection_with_sign_correction(a)
    ours = our_svd.get_2d_projection_with_sign_correction(a)
    _close_to_float32(ours, theirs)
    flat = ours.reshape(len(ours), -1)
    assert (np.abs(flat.min(1)) <= np.abs(flat.max(1))).all()
    assert np.isnan(a[0, 1, 0, 0])                      # the input is not modified


# -- find_layers ---------------------------------------------------------------------


class _Shared(nn.Module):
    """A tree with a module under two paths and an empty (None) slot."""

    def __init__(self):
        super().__init__()
        relu = nn.ReLU()
        self.a = nn.Sequential(nn.Conv2d(3, 4, 3), relu, nn.Sequential(nn.BatchNorm2d(4), relu))
        self.b = relu
        self.c = nn.Linear(4, 2)


def _models():
    torch.manual_seed(0)
    return [torchvision.models.resnet18().eval(), _Shared()]


@pytest.mark.parametrize("index", [0, 1])
def test_find_layers_match(index):
    model = _models()[index]
    for types in ([nn.ReLU], [nn.Conv2d, nn.BatchNorm2d], [nn.Module], []):
        assert our_layers.find_layer_types_recursive(model, types) == \
            their_layers.find_layer_types_recursive(model, types)
    for predicate in (lambda m: isinstance(m, nn.modules.conv._ConvNd), lambda m: len(m._modules) > 1):
        ours = our_layers.find_layer_predicate_recursive(model, predicate)
        assert ours == their_layers.find_layer_predicate_recursive(model, predicate) and ours
    assert our_layers.find_layer_types_recursive(model, nn.ReLU) == \
        our_layers.find_layer_types_recursive(model, [nn.ReLU])


@pytest.mark.parametrize("index", [0, 1])
def test_replace_layers_match(index):
    model = _models()[index]
    old = our_layers.find_layer_types_recursive(model, [nn.ReLU])[-1]
    for replace_all in (False, True):
        ours, theirs = copy.deepcopy(model), copy.deepcopy(model)
        if replace_all:
            new = nn.GELU()
            assert our_layers.replace_all_layer_type_recursive(ours, (nn.ReLU, nn.BatchNorm2d), new) is None
            their_layers.replace_all_layer_type_recursive(theirs, (nn.ReLU, nn.BatchNorm2d), new)
        else:
            path = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}[id(old)]
            found = our_layers.replace_layer_recursive(ours, ours.get_submodule(path), nn.GELU())
            assert found is their_layers.replace_layer_recursive(theirs, theirs.get_submodule(path),
                                                                 nn.GELU()) is True
        assert repr(ours) == repr(theirs)
        assert [n for n, _ in ours.named_modules(remove_duplicate=False)] == \
            [n for n, _ in theirs.named_modules(remove_duplicate=False)]
    assert our_layers.replace_layer_recursive(model, nn.ReLU(), nn.GELU()) is False


def test_find_layers_skip_empty_slots():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU())
    model.register_module("empty", None)               # grad-cam's walk raises AttributeError here
    assert our_layers.find_layer_types_recursive(model, [nn.ReLU]) == [model[1]]
    assert our_layers.replace_layer_recursive(model, model[1], nn.Tanh()) is True
    assert isinstance(model[1], nn.Tanh)
    with pytest.raises(TypeError):
        our_layers.replace_layer_recursive(model, model[1], "not a module")


# -- utils.image ---------------------------------------------------------------------


def test_scale_accross_batch_and_channels_matches():
    t = np.random.default_rng(4).random((2, 3, 7, 9)).astype(np.float32)
    for size in [(20, 14), (9, 7), (5, 3)]:
        ours = our_image.scale_accross_batch_and_channels(t, size)
        theirs = their_image.scale_accross_batch_and_channels(t, size)
        assert ours.shape == theirs.shape == (2, 3, size[1], size[0]) and ours.dtype == theirs.dtype
        np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
    assert our_image.scale_accross_batch_and_channels(torch.from_numpy(t), (9, 7)).shape == (2, 3, 7, 9)


def _labels(n):
    return {i: f"class {i}, alias {i}, more {i}, extra {i}" if i % 2 else f"class {i}" for i in range(n)}


@pytest.mark.parametrize("top_k", [1, 2, 5])
def test_create_labels_legend_matches(top_k):
    scores = np.random.default_rng(5).random((4, 12)).astype(np.float32)
    ours = our_image.create_labels_legend(scores, _labels(12), top_k)
    assert ours == their_image.create_labels_legend(scores, _labels(12), top_k)
    assert ours == our_image.create_labels_legend(torch.from_numpy(scores), list(_labels(12).values()), top_k)
    assert all(line.count("\n") == top_k - 1 for line in ours)


def test_create_labels_legend_is_strict():
    scores = np.random.default_rng(6).random((3, 6))
    labels = _labels(6)
    top = int(scores[0].argmax())
    del labels[top]
    with pytest.raises(ValueError, match=rf"no name for categories \[.*{top}.*\]"):
        our_image.create_labels_legend(scores, labels, 2)
    with pytest.raises(ValueError, match=r"top_k must be in \[1, 6\]"):
        our_image.create_labels_legend(scores, _labels(6), 7)
    with pytest.raises(ValueError, match="no name"):
        our_image.create_labels_legend(scores, ["only one"], 1)


@pytest.fixture
def old_pyplot_cmap(monkeypatch):
    """grad-cam's default colours call ``plt.cm.get_cmap``, removed in matplotlib 3.9:
    put it back (as ``matplotlib.colormaps.get_cmap``) so that its default path runs."""
    monkeypatch.setattr(plt.cm, "get_cmap", matplotlib.colormaps.get_cmap, raising=False)


def _factorization_inputs(n, h=48, w=64, seed=7):
    rng = np.random.default_rng(seed)
    img = rng.random((h, w, 3)).astype(np.float32)
    explanations = rng.random((n, h, w)).astype(np.float32)
    explanations[:, :4, :4] = 0                         # pixels no component explains
    return img, explanations


def _theirs_factorization(*args, **kw):
    with matplotlib.rc_context():                       # theirs sets rcParams['legend.fontsize']
        return their_image.show_factorization_on_image(*args, **kw)


@pytest.mark.parametrize("n", [1, 3, 5, 8])
@pytest.mark.parametrize("image_weight", [0.5, 0.3])
def test_show_factorization_on_image_matches(old_pyplot_cmap, n, image_weight):
    img, explanations = _factorization_inputs(n)
    given = explanations.copy()
    ours = our_image.show_factorization_on_image(img, explanations, image_weight=image_weight)
    np.testing.assert_array_equal(explanations, given)  # ours leaves the input alone (theirs zeroes it)
    theirs = _theirs_factorization(img, explanations.copy(), image_weight=image_weight)
    assert ours.dtype == theirs.dtype == np.uint8 and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)
    colors = [np.array([0.1 * i, 0.9 - 0.1 * i, 0.5, 1.0]) for i in range(n)]
    np.testing.assert_array_equal(our_image.show_factorization_on_image(img, explanations, colors),
                                  _theirs_factorization(img, explanations.copy(), colors))


@pytest.mark.parametrize("n,h,w", [(3, 48, 64), (7, 128, 96)])
def test_show_factorization_legend_matches(old_pyplot_cmap, n, h, w):
    img, explanations = _factorization_inputs(n, h, w)
    labels = our_image.create_labels_legend(np.random.default_rng(8).random((n, 10)), _labels(10), 2)
    fontsize = matplotlib.rcParams["legend.fontsize"]
    ours = our_image.show_factorization_on_image(img, explanations, concept_labels=labels)
    assert matplotlib.rcParams["legend.fontsize"] == fontsize
    theirs = _theirs_factorization(img, explanations.copy(), concept_labels=labels)
    assert ours.shape == theirs.shape == (h, 2 * w, 3) and ours.dtype == theirs.dtype == np.uint8
    np.testing.assert_array_equal(ours[:, :w], theirs[:, :w])      # the image part
    np.testing.assert_array_equal(ours[:, w:], theirs[:, w:])      # the legend, rendered alike
    assert (ours[:, w:] != 255).any()                              # something was drawn


def test_show_factorization_on_image_is_strict():
    img, explanations = _factorization_inputs(3)
    with pytest.raises(ValueError, match="2 concept_labels for 3 components"):
        our_image.show_factorization_on_image(img, explanations, concept_labels=["a", "b"])
    with pytest.raises(ValueError, match="2 colors for 3 components"):
        our_image.show_factorization_on_image(img, explanations, colors=[np.ones(3)] * 2)
    with pytest.raises(ValueError, match=r"\(n_components, H, W\)"):
        our_image.show_factorization_on_image(img, explanations[:, :10])
    with pytest.raises(ValueError, match=r"range \[0, 1\]"):
        our_image.show_factorization_on_image(img * 255, explanations)
    one = explanations[:1] * 3                          # strengths above 1 saturate, no wrap-around
    np.testing.assert_array_equal(our_image.show_factorization_on_image(img, one),
                                  our_image.show_factorization_on_image(img, np.clip(one, 0, 1)))
