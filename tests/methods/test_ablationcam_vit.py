"""Ablation-CAM on a token model (ViT): fastcam's AblationCAM front-end with
``AblationLayerVit`` and a ``reshape_transform`` against pytorch-grad-cam 1.5.7's
``AblationCAM`` + ``AblationLayerVit`` (a tiny torchvision VisionTransformer in random
init, batch 2; several chunks; ratio_channels_to_ablate < 1), the native method's token
path, batch against single images, the model left unchanged, the native layer against
grad-cam's, and bad input."""
import functools
import warnings

import numpy as np
import pytest
import torch
import torchvision

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam import ablation_layer as their_layers  # noqa: E402
from pytorch_grad_cam.utils import model_targets as their_targets  # noqa: E402

from fastcam.compat.pytorch_grad_cam.ablation_cam import AblationCAM as FcAblationCAM  # noqa: E402
from fastcam.compat.pytorch_grad_cam.ablation_layer import (AblationLayer,  # noqa: E402
                                                            AblationLayerVit)
from fastcam.methods.ablationcam import AblationCAM  # noqa: E402

TOL = 1e-4
CLASSES = [3, 7]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@functools.lru_cache(maxsize=None)
def _vit():
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
        num_classes=10).eval()
    with torch.no_grad():            # torchvision zero-initialises the head: all logits 0
        torch.nn.init.normal_(model.heads.head.weight, std=0.5)
        torch.nn.init.normal_(model.heads.head.bias, std=0.5)
    return model


def _reshape(tokens, h=4, w=4):
    """torchvision's (B, 1 + h·w, D) tokens, class token first -> (B, D, h, w)."""
    grid = tokens[:, 1:, :].reshape(tokens.shape[0], h, w, tokens.shape[2])
    return grid.permute(0, 3, 1, 2)


def _x(n=2, seed=1):
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _theirs(model, x, **kw):
    with pgc.AblationCAM(model, [model.encoder.layers[-1].ln_1], reshape_transform=_reshape,
                         ablation_layer=their_layers.AblationLayerVit(), **kw) as cam:
        return cam(x, [their_targets.ClassifierOutputTarget(c) for c in CLASSES])


def _ours(model, x, layer_cls=AblationLayerVit, **kw):
    with FcAblationCAM(model, [model.encoder.layers[-1].ln_1], reshape_transform=_reshape,
                       ablation_layer=layer_cls(), **kw) as cam:
        return cam(x, [their_targets.ClassifierOutputTarget(c) for c in CLASSES]), cam


@pytest.mark.parametrize("kw", [{}, {"batch_size": 5}, {"ratio_channels_to_ablate": 0.4},
                                {"ratio_channels_to_ablate": 0.75, "batch_size": 3}],
                         ids=["default", "chunks", "ratio", "ratio-overlap-chunks"])
def test_matches_grad_cam_ablation_layer_vit(kw):
    model, x = _vit(), _x()
    theirs = _theirs(model, x, **kw)
    ours, cam = _ours(model, x, **kw)
    assert ours.shape == theirs.shape == (2, 32, 32)
    assert np.abs(ours - theirs).max() < TOL
    extra = cam.method.compute_weights(x, CLASSES).extra
    assert extra["path"] == ["tokens"]
    if kw.get("ratio_channels_to_ablate", 1.0) < 1:
        assert not bool(extra["ablated"][0].all())          # some channels keep weight 0


def test_grad_cams_own_layer_vit_is_accepted():
    model, x = _vit(), _x()
    ours, _ = _ours(model, x, layer_cls=their_layers.AblationLayerVit, batch_size=7)
    assert np.abs(ours - _theirs(model, x, batch_size=7)).max() < TOL


def test_native_token_path_batch_equals_single_images_and_formula():
    """The native method with a reshape_transform: batch == single images, and each
    weight is (y_c − y_c^k)/y_c with y_c^k the logit of the model whose layer output has
    token channel k zeroed (the native ablation value)."""
    model, x = _vit(), _x()
    layer = model.encoder.layers[-1].ln_1
    cam = AblationCAM(model, layer, batch_size=6)
    cam.reshape_transform = _reshape
    assert cam.capture_kind() == "forward" and AblationCAM.capture == "split"
    maps = cam(x, CLASSES)
    w = cam.compute_weights(x, CLASSES).weights[0]
    for b in range(2):
        single = cam(x[b:b + 1], CLASSES[b:b + 1])
        assert torch.allclose(single, maps[b:b + 1], atol=TOL)
    k, b = 5, 1

    def zero_channel(module, _inputs, out):
        out = out.clone()
        out[..., k] = 0
        return out

    with torch.no_grad():
        y = model(x[b:b + 1])[0, CLASSES[b]]
        handle = layer.register_forward_hook(zero_channel)
        try:
            yk = model(x[b:b + 1])[0, CLASSES[b]]
        finally:
            handle.remove()
    assert torch.allclose(w[b, k], (y - yk) / y, atol=1e-5)
    cam.reshape_transform = None
    assert cam.capture == "split"


def test_model_unchanged():
    model, x = _vit(), _x()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ours, _ = _ours(model, x, batch_size=4)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not model.training
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    assert model.encoder.layers[-1].ln_1.__class__ is torch.nn.LayerNorm
    again, _ = _ours(model, x, batch_size=4)
    assert np.array_equal(ours, again)


def test_native_layer_vit_matches_grad_cams():
    g = torch.Generator().manual_seed(2)
    tokens = torch.randn(2, 17, 16, generator=g)
    A = _reshape(tokens)[1]
    for ratio in (1.0, 0.5):
        ours, theirs = AblationLayerVit(), their_layers.AblationLayerVit()
        assert np.array_equal(ours.activations_to_be_ablated(A, ratio),
                              theirs.activations_to_be_ablated(A.numpy(), ratio))
        for layer in (ours, theirs):
            layer.set_next_batch(input_batch_index=1, activations=tokens, num_channels_to_ablate=4)
        assert torch.equal(ours(None), theirs(None))
    zero = torch.relu(tokens)
    zero[:, 0, 0] = 0
    ours, theirs = AblationLayerVit(), their_layers.AblationLayerVit()
    for layer in (ours, theirs):
        layer.activations_to_be_ablated(_reshape(zero)[0])
        layer.set_next_batch(0, zero, 3)
    assert torch.equal(ours(None), theirs(None))
    assert isinstance(ours, AblationLayer) and type(ours).__module__.startswith("fastcam.")


def test_bad_input():
    model = _vit()
    layer = model.encoder.layers[-1].ln_1
    with pytest.raises(ValueError, match="reshape_transform"):
        FcAblationCAM(model, [layer], ablation_layer=AblationLayerVit())
    with pytest.raises(ValueError, match="AblationLayerVit"):
        FcAblationCAM(model, [layer], reshape_transform=_reshape)
    with pytest.raises(ValueError, match="AblationLayerVit"):
        FcAblationCAM(model, [layer], reshape_transform=_reshape, ablation_layer=AblationLayer())
    with pytest.raises(ValueError, match="pytorch_grad_cam.AblationCAM"):
        FcAblationCAM(model, [layer], reshape_transform=_reshape,
                      ablation_layer=their_layers.AblationLayerFasterRCNN())

    def half(tokens):          # 8 of the 16 channels: not the token layout's channel axis
        return _reshape(tokens[..., :8])

    cam = FcAblationCAM(model, [layer], reshape_transform=half, ablation_layer=AblationLayerVit())
    with pytest.raises(ValueError, match="channels last"):
        cam(_x(1), [their_targets.ClassifierOutputTarget(0)])
    native = AblationCAM(model, layer)
    with pytest.raises(TypeError, match="reshape_transform"):
        native.reshape_transform = "grid"
    native.reshape_transform = _reshape
    with pytest.raises((ValueError, TypeError)):
        native(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="target class out of range"):
        native(_x(1), [10])


def test_bf16_runs_close_to_fp32():
    from fastcam.engine import cpu_supports
    if not cpu_supports(torch.bfloat16):
        pytest.skip("no bf16 on this CPU")
    model, x = _vit(), _x()
    fp32, _ = _ours(model, x)
    bf16, _ = _ours(model, x, precision="bf16")
    assert np.isfinite(bf16).all() and np.abs(bf16 - fp32).max() < 0.05
