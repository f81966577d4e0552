"""One consistent API (issue 29, item 4): ``target_layers`` everywhere (``target_layer``
a deprecated alias), ``reshape_transform=`` / ``progress=`` on every constructor and on
``fastcam.explain``, the ``normalize`` presets in Python, and the input dtypes an
explainer converts or rejects."""
import inspect
import warnings

import pytest
import torch
from torch import nn

import fastcam
from fastcam.inputs import resolve_normalize
from fastcam.methods import METHODS, BaseCAM

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _net(classes: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes)).eval()


def test_explain_takes_target_layers():
    model, x = _net(), torch.rand(2, 3, 16, 16)
    by_name = fastcam.explain(model, x, target_layers=["2"], targets=[1, 3])
    by_module = fastcam.explain(model, x, target_layers=[model[2]], targets=[1, 3])
    with fastcam.GradCAM(model, target_layers=["2"]) as cam:
        direct = cam(x, [1, 3])
    assert torch.equal(by_name, direct) and torch.equal(by_module, direct)
    # the layer matters: the first conv's maps differ
    assert not torch.allclose(fastcam.explain(model, x, target_layers=["0"], targets=[1, 3]), direct)


@pytest.mark.parametrize("call", ["explain", "constructor"])
def test_target_layer_is_a_deprecated_alias(call):
    model, x = _net(), torch.rand(2, 3, 16, 16)
    expected = fastcam.explain(model, x, target_layers="2", targets=[1, 3])
    with pytest.warns(FutureWarning, match="target_layer= is deprecated; use target_layers="):
        if call == "explain":
            got = fastcam.explain(model, x, target_layer="2", targets=[1, 3])
        else:
            got = fastcam.GradCAM(model, target_layer="2")(x, [1, 3])
    assert torch.equal(got, expected)
    with pytest.raises(TypeError, match="target_layers only"):
        fastcam.explain(model, x, target_layers="2", target_layer="0")


def test_target_layers_without_the_alias_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastcam.explain(_net(), torch.rand(1, 3, 16, 16), target_layers="2")


@pytest.mark.parametrize("name", sorted(set(METHODS) - {"gradcampp"}))
def test_every_constructor_takes_reshape_transform_and_progress(name):
    params = inspect.signature(METHODS[name]).parameters
    for option in ("reshape_transform", "progress", "normalize"):
        assert params[option].kind is inspect.Parameter.KEYWORD_ONLY, (name, option)
        assert params[option].default is None
    assert "target_layer" not in params          # the alias is not advertised
    explain = inspect.signature(fastcam.explain).parameters
    assert {"target_layers", "reshape_transform", "progress", "normalize"} <= set(explain)


def test_reshape_transform_keyword_is_the_attribute():
    """A token model (B, N, D) explained through the keyword gives what the
    attribute gives, and the gradient flows through the transform."""
    torch.manual_seed(0)

    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, 8, 4, 4)
            self.block = nn.Linear(8, 8)
            self.head = nn.Linear(8, 5)

        def forward(self, x):
            t = self.embed(x).flatten(2).transpose(1, 2)       # (B, 16, 8)
            return self.head(torch.tanh(self.block(t)).mean(1))

    def grid(t):
        return t.reshape(t.shape[0], 4, 4, t.shape[2]).permute(0, 3, 1, 2)

    model, x = Tokens().eval(), torch.rand(2, 3, 16, 16)
    keyword = fastcam.GradCAM(model, ["block"], reshape_transform=grid)(x, [0, 4])
    cam = fastcam.GradCAM(model, ["block"])
    cam.reshape_transform = grid
    assert torch.equal(keyword, cam(x, [0, 4]))
    assert torch.equal(keyword, fastcam.explain(model, x, target_layers=["block"], targets=[0, 4],
                                                reshape_transform=grid))
    assert keyword.shape == (2, 16, 16) and float(keyword.amax()) == 1.0
    with pytest.raises(TypeError, match="reshape_transform must be callable"):
        fastcam.GradCAM(model, ["block"], reshape_transform="grid")


def test_normalize_presets_in_python():
    model = _net()
    assert fastcam.GradCAM(model, normalize="imagenet").normalize == IMAGENET
    assert fastcam.GradCAM(model, normalize="auto").normalize == IMAGENET
    assert fastcam.GradCAM(model, normalize="none").normalize is None
    assert fastcam.GradCAM(model, normalize="0.5/0.25").normalize == ((0.5,), (0.25,))
    # a model that declares its own statistics keeps them (the CLI's meaning of the names)
    model.normalization = ((0.5,) * 3, (0.5,) * 3)
    assert fastcam.GradCAM(model, normalize="imagenet").normalize == model.normalization
    assert resolve_normalize("model", model) == model.normalization
    with pytest.raises(ValueError, match="declares no `normalization`"):
        resolve_normalize("model", _net())
    with pytest.raises(ValueError, match="choose from"):
        fastcam.GradCAM(model, normalize="imagenette")
    with pytest.raises(ValueError, match="positive stds"):
        fastcam.GradCAM(model, normalize=((0.5,), (0.0,)))


def test_normalize_imagenet_maps_equal_the_explicit_pair():
    model, x = _net(), torch.rand(2, 3, 16, 16)
    named = fastcam.explain(model, x, "scorecam", "2", [1, 2], normalize="imagenet")
    pair = fastcam.explain(model, x, "scorecam", "2", [1, 2], normalize=IMAGENET)
    plain = fastcam.explain(model, x, "scorecam", "2", [1, 2])
    assert torch.equal(named, pair) and not torch.allclose(named, plain)


def test_float64_input_is_cast_to_the_models_dtype():
    model, x = _net(), torch.rand(2, 3, 16, 16)
    for name in ("gradcam", "scorecam"):
        expected = fastcam.explain(model, x, name, "2", [0, 1])
        got = fastcam.explain(model, x.double(), name, "2", [0, 1])
        assert got.dtype == torch.float32 and torch.equal(got, expected)
    # a float64 model keeps a float64 input (and explains in it)
    double = _net().double()
    maps = fastcam.explain(double, x.double(), "gradcam", "2", [0, 1])
    assert torch.allclose(maps, fastcam.explain(_net(), x, "gradcam", "2", [0, 1]), atol=1e-5)


def test_uint8_input_is_read_as_pixels_and_other_integers_are_rejected():
    model = _net()
    pixels = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(fastcam.explain(model, pixels, "gradcam", "2", [0, 1]),
                       fastcam.explain(model, pixels.float() / 255, "gradcam", "2", [0, 1]))
    for dtype in (torch.int64, torch.int32, torch.bool):
        with pytest.raises(TypeError, match=f"floating point .* or uint8.*{dtype}"):
            fastcam.explain(model, torch.zeros(2, 3, 16, 16, dtype=dtype))


def test_help_says_what_targets_and_inputs_accept():
    import pydoc

    shown = pydoc.render_doc(fastcam.GradCAM, renderer=pydoc.plaintext)     # what help() prints
    for words in ("targets: which class score", "None (each image's predicted class)",
                  "B callables", "ClassifierOutputTarget", "uint8", "float64", "never",
                  "reshape_transform", "progress"):
        assert words in shown, words
    for words in ("reshape_transform:", "progress:", '"imagenet"', "target_layer="):
        assert words in inspect.getdoc(BaseCAM), words
    assert "target_layers" in inspect.getdoc(fastcam.explain)


def test_compat_front_ends_keep_their_peers_signatures():
    """The drop-in classes take exactly the peers' parameters, in order (the new
    native keywords do not leak into them)."""
    pgc = pytest.importorskip("pytorch_grad_cam")
    tcm = pytest.importorskip("torchcam.methods")
    from fastcam.compat import pytorch_grad_cam as ours_pgc
    from fastcam.compat.torchcam import methods as ours_tcm

    def named(cls):
        return [p.name for p in inspect.signature(cls).parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    for name in ("GradCAM", "ScoreCAM", "GradCAMPlusPlus", "AblationCAM", "EigenCAM"):
        theirs, ours = named(getattr(pgc, name)), named(getattr(ours_pgc, name))
        assert ours[:len(theirs)] == theirs, name
        assert "progress" not in ours and "target_layer" not in ours
    for name in ("GradCAM", "ScoreCAM", "SSCAM", "SmoothGradCAMpp", "LayerCAM"):
        theirs, ours = named(getattr(tcm, name)), named(getattr(ours_tcm, name))
        assert ours[:len(theirs)] == theirs, name
        assert "target_layer" in ours and "target_layers" not in ours


def test_a_reshape_transform_is_never_silently_ignored():
    model, x = _net(), torch.rand(2, 3, 16, 16)

    def identity(t):
        return t

    for method in ("liftcam", "shapcam"):         # they split the model at the layer
        with pytest.raises(ValueError, match="cannot take a reshape_transform"):
            fastcam.explain(model, x, method, "2", [0, 1], reshape_transform=identity)
    from torchvision.models import VisionTransformer

    vit = VisionTransformer(image_size=32, patch_size=16, num_layers=1, num_heads=1, hidden_dim=8,
                            mlp_dim=8, num_classes=3)
    with pytest.raises(ValueError, match="LeGrad .* takes no reshape_transform"):
        fastcam.LeGrad(vit, reshape_transform=identity)


def test_a_float64_batch_on_a_half_model_and_a_half_batch_are_taken():
    half = _net().to(torch.bfloat16)
    x = torch.rand(2, 3, 16, 16)
    expected = fastcam.explain(half, x, "gradcam", "2", [0, 1])
    assert torch.equal(fastcam.explain(half, x.double(), "gradcam", "2", [0, 1]), expected)
    assert torch.equal(fastcam.explain(half, x.half(), "gradcam", "2", [0, 1]),
                       fastcam.explain(half, x.half().float(), "gradcam", "2", [0, 1]))
    # a half batch on a float32 model is widened (exactly) to float32
    half_x = x.half()
    assert torch.equal(fastcam.explain(_net(), half_x, "gradcam", "2", [0, 1]),
                       fastcam.explain(_net(), half_x.float(), "gradcam", "2", [0, 1]))
