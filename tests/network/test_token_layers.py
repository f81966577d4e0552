"""The automatic target layer of vision transformers (issue 29, item 6): never the
patch embedding; torchvision's ViT -> ``encoder.layers[-1].ln_1`` with the class
token dropped, Swin -> the last stage's last block's ``norm1`` permuted from
(B, h, w, C); timm's equivalents when timm is installed; an error that says what to
pass for a token model fastcam does not know."""
import pytest
import torch
from torch import nn
from torchvision.models import SwinTransformer, VisionTransformer

import fastcam
from fastcam.network.layers import find_spatial_layer, find_target_layer
from fastcam.network.tokens import ChannelsLastGrid, TokenGrid


def _vit() -> nn.Module:
    torch.manual_seed(0)
    return VisionTransformer(image_size=64, patch_size=16, num_layers=2, num_heads=2, hidden_dim=32,
                             mlp_dim=64, num_classes=10).eval()


def _swin() -> nn.Module:
    torch.manual_seed(0)
    return SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[1, 1],
                           window_size=[2, 2], stochastic_depth_prob=0.0, num_classes=10).eval()


def test_token_grid_lays_patch_tokens_out_row_by_row():
    tokens = torch.arange(2 * 7 * 3, dtype=torch.float32).reshape(2, 7, 3)   # 1 prefix + 2x3 patches
    grid = TokenGrid(prefix_tokens=1, grid_shape=(2, 3))(tokens)
    assert grid.shape == (2, 3, 2, 3)
    for r in range(2):
        for c in range(3):
            assert torch.equal(grid[:, :, r, c], tokens[:, 1 + r * 3 + c])
    square = TokenGrid(prefix_tokens=0)(torch.rand(1, 16, 5))
    assert square.shape == (1, 5, 4, 4)
    with pytest.raises(ValueError, match="no square grid"):
        TokenGrid(prefix_tokens=1)(torch.rand(1, 7, 3))
    hwc = torch.rand(2, 3, 4, 5)
    assert torch.equal(ChannelsLastGrid()(hwc), hwc.permute(0, 3, 1, 2))


def test_vit_picks_the_last_blocks_first_norm_not_the_patch_embedding():
    model, x = _vit(), torch.rand(2, 3, 64, 64)
    assert find_spatial_layer(model, x) is model.conv_proj     # what a plain search would take
    layer, transform = find_target_layer(model, x)
    assert layer is model.encoder.layers[-1].ln_1
    assert isinstance(transform, TokenGrid) and transform.prefix_tokens == 1
    assert transform.grid_shape == (4, 4)


def test_vit_gradcam_matches_the_hand_computed_weights():
    """Grad-CAM on the auto-picked ViT layer: w_k = mean of ∂y_c/∂A_k over the
    grid, A the patch tokens of ln_1's output (class token dropped) on the grid."""
    model, x, targets = _vit(), torch.rand(2, 3, 64, 64), [3, 7]
    cam = fastcam.GradCAM(model)
    maps = cam(x, targets)
    assert cam.target_layers == [model.encoder.layers[-1].ln_1]
    assert maps.shape == (2, 64, 64)

    out = {}
    handle = model.encoder.layers[-1].ln_1.register_forward_hook(
        lambda m, i, o: out.setdefault("tokens", o))
    logits = model(x)
    handle.remove()
    tokens = out["tokens"]
    grad, = torch.autograd.grad(logits[[0, 1], targets].sum(), tokens)
    A = tokens[:, 1:].reshape(2, 4, 4, 32).permute(0, 3, 1, 2)
    G = grad[:, 1:].reshape(2, 4, 4, 32).permute(0, 3, 1, 2)
    low = torch.relu((G.mean((2, 3))[:, :, None, None] * A).sum(1))
    torch.testing.assert_close(cam.last.low_res[0], low.detach(), rtol=1e-4, atol=1e-6)
    # the same as giving the layer and pytorch-grad-cam's ViT transform explicitly
    from fastcam.compat.pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform

    explicit = fastcam.explain(model, x, target_layers=[model.encoder.layers[-1].ln_1], targets=targets,
                               reshape_transform=lambda t: vit_reshape_transform(t, 4, 4))
    assert torch.equal(maps, explicit)


def test_swin_picks_the_last_stages_last_blocks_norm1():
    model, x = _swin(), torch.rand(2, 3, 32, 32)
    layer, transform = find_target_layer(model, x)
    assert layer is model.features[-1][-1].norm1
    assert isinstance(transform, ChannelsLastGrid)
    cam = fastcam.GradCAM(model)
    maps = cam(x, [1, 2])
    out = {}
    handle = layer.register_forward_hook(lambda m, i, o: out.setdefault("hwc", o.detach()))
    model(x)
    handle.remove()
    assert out["hwc"].shape == (2, 4, 4, 32)                      # (B, h, w, C)
    assert torch.equal(cam.last.activations[0], out["hwc"].permute(0, 3, 1, 2))
    assert maps.shape == (2, 32, 32) and float(maps.amax()) == 1.0


def test_an_unknown_token_model_gets_an_error_that_says_what_to_pass():
    class Patches(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch_embed = nn.Conv2d(3, 8, 8, 8)
            self.block = nn.Linear(8, 8)
            self.head = nn.Linear(8, 4)

        def forward(self, x):
            t = self.patch_embed(x).flatten(2).transpose(1, 2)
            return self.head(self.block(t).mean(1))

    with pytest.raises(ValueError, match="'patch_embed', a patch embedding.*target_layers=.*"
                                         "reshape_transform=fastcam.network.tokens.TokenGrid"):
        fastcam.GradCAM(Patches().eval())(torch.rand(1, 3, 32, 32))


def test_a_cnn_keeps_the_last_spatial_layer():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 2, 2), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).eval()
    x = torch.rand(1, 3, 16, 16)
    assert find_target_layer(model, x) == (model[3], None)
    # a strided first conv (kernel = stride) is not mistaken for a patch embedding:
    # nothing after it is a token sequence
    only = nn.Sequential(nn.Conv2d(3, 4, 4, 4), nn.Flatten(), nn.Linear(64, 3)).eval()
    assert find_target_layer(only, x) == (only[0], None)


@pytest.mark.parametrize("arch", ["vit", "swin"])
def test_timm_transformers(arch):
    timm = pytest.importorskip("timm", reason="timm is not installed")
    if arch == "vit":
        model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64,
                                  num_classes=5, depth=2).eval()
        x = torch.rand(1, 3, 64, 64)
        layer, transform = find_target_layer(model, x)
        assert layer is model.blocks[-1].norm1 and transform.prefix_tokens == model.num_prefix_tokens
    else:
        model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=64,
                                  window_size=2, num_classes=5, depths=(1, 1), num_heads=(1, 1),
                                  embed_dim=16).eval()
        x = torch.rand(1, 3, 64, 64)
        layer, transform = find_target_layer(model, x)
        assert layer is model.layers[-1].blocks[-1].norm1
    maps = fastcam.GradCAM(model)(x, [1])
    assert maps.shape == (1, 64, 64) and float(maps.amax()) == 1.0
