"""LeGrad natively: parity with TorchCAM 0.5.0's LeGrad on a tiny torchvision
VisionTransformer (random init, batch 2), one and several target blocks; the
model unchanged after a call and after an error; batch == single images; errors."""
import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

torchcam_methods = pytest.importorskip("torchcam.methods")

from fastcam.methods.base import minmax  # noqa: E402
from fastcam.methods.legrad import AttentionRecorder, LeGrad, legrad_relevance, vit_score_projection  # noqa: E402

TOL = 1e-4


def _vit(**kw):
    torch.manual_seed(0)
    options = dict(image_size=32, patch_size=8, num_layers=3, num_heads=2, hidden_dim=16,
                   mlp_dim=32, num_classes=10) | kw
    model = torchvision.models.VisionTransformer(**options).eval()
    # torchvision initialises the head to zero: every class score would be constant
    nn.init.normal_(model.heads.head.weight, std=0.5)
    return model


@pytest.fixture(scope="module")
def vit():
    return _vit()


@pytest.fixture(scope="module")
def x():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _theirs(model, blocks, x, classes, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torchcam_methods.LeGrad(model, blocks, **kw) as extractor:
            scores = model(x)
            return extractor(classes, scores)[0]


def _torchcam_normalise(cam):
    cam = cam - cam.amin(dim=(-2, -1), keepdim=True)
    return cam / (cam.amax(dim=(-2, -1), keepdim=True) + 1e-8)


def _up(cam, size):
    return minmax(F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0])


@pytest.mark.parametrize("which", ["last", "all", "first-and-last"])
def test_parity_with_torchcam(vit, x, which):
    blocks = list(vit.encoder.layers)
    blocks = {"last": blocks[-1:], "all": blocks, "first-and-last": [blocks[0], blocks[-1]]}[which]
    ref = _theirs(vit, blocks, x, [3, 7])
    cam = LeGrad(vit, blocks)
    maps = cam(x, [3, 7])
    assert ref.shape == (2, 4, 4) and ref.amax() > 0.99
    low = _torchcam_normalise(torch.stack(cam.last.low_res).mean(0))
    torch.testing.assert_close(low, ref, atol=TOL, rtol=0)
    torch.testing.assert_close(maps, _up(ref, (32, 32)), atol=TOL, rtol=0)
    assert maps.shape == (2, 32, 32) and maps.dtype == torch.float32
    assert len(cam.last.low_res) == len(blocks)
    assert cam.last.activations[0].shape == (2, 16, 4, 4)   # the block tokens on the grid


def test_parity_by_names_predicted_class_and_one_class(vit, x):
    names = ["encoder.layers.encoder_layer_1", "encoder.layers.encoder_layer_2"]
    blocks = [vit.get_submodule(n) for n in names]
    predicted = vit(x).argmax(1).tolist()
    torch.testing.assert_close(LeGrad(vit, names)(x), _up(_theirs(vit, blocks, x, predicted), (32, 32)),
                               atol=TOL, rtol=0)
    torch.testing.assert_close(LeGrad(vit, names)(x, 5), _up(_theirs(vit, blocks, x, 5), (32, 32)),
                               atol=TOL, rtol=0)


def test_parity_with_a_grid_shape_prefix_and_projection(vit, x):
    """prefix_tokens=2 leaves 15 keys: a 3×5 grid; a class-token projection."""
    blocks = list(vit.encoder.layers)[1:]

    def cls_token(tokens):
        return vit.heads(vit.encoder.ln(tokens[:, 0]))

    kw = dict(prefix_tokens=2, grid_shape=(3, 5), score_projection=cls_token)
    ref = _theirs(vit, blocks, x, [1, 2], **kw)
    cam = LeGrad(vit, blocks, **kw)
    maps = cam(x, [1, 2])
    torch.testing.assert_close(_torchcam_normalise(torch.stack(cam.last.low_res).mean(0)), ref,
                               atol=TOL, rtol=0)
    torch.testing.assert_close(maps, _up(ref, (32, 32)), atol=TOL, rtol=0)


def test_one_backward_equals_one_per_block(vit, x):
    """The cut graph (one backward) gives each block's own ∂s_l/∂P_l, as the whole
    graph with one backward per block does."""
    blocks = list(vit.encoder.layers)
    out = {}
    for cut in (True, False):
        with AttentionRecorder(vit, blocks, vit_score_projection(vit), cut=cut) as rec:
            logits = vit(x)
        P, layer_logits = rec.collected()
        if not cut:
            assert logits.grad_fn is not None and logits.requires_grad
        scores = [s[:, 4] for s in layer_logits]
        out[cut] = legrad_relevance(scores, P, 1, joint=cut)
        assert out[cut][0].shape == (2, 4, 4)
    for a, b in zip(out[True], out[False]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    # and the joint backward on the whole graph would not (the later blocks' scores leak)
    with AttentionRecorder(vit, blocks, vit_score_projection(vit), cut=False) as rec:
        vit(x)
    P, layer_logits = rec.collected()
    leaked = legrad_relevance([s[:, 4] for s in layer_logits], P, 1, joint=True)
    assert not torch.allclose(leaked[0], out[True][0], atol=1e-5)


def _hooks(model):
    return [(name, dict(m._forward_hooks), dict(m._forward_pre_hooks), dict(m._backward_hooks),
             dict(m._forward_hooks_with_kwargs)) for name, m in model.named_modules()]


def test_the_model_is_unchanged_after_a_call_and_after_an_error(x):
    model = _vit()
    seen = []
    model.encoder.layers[1].register_forward_hook(lambda m, i, o: seen.append(1))
    state = copy.deepcopy(model.state_dict())
    hooks = _hooks(model)
    with torch.no_grad():
        before = model(x)
    flags = [p.requires_grad for p in model.parameters()]
    LeGrad(model, list(model.encoder.layers))(x, [0, 1])

    def bad_projection(tokens):
        return tokens                      # (B, N, D): not logits
    with pytest.raises(ValueError, match="score_projection must return"):
        LeGrad(model, [model.encoder.layers[0]], score_projection=bad_projection)(x)
    with pytest.raises(ValueError, match="square grid"):
        LeGrad(model, [model.encoder.layers[0]], prefix_tokens=2)(x)
    assert _hooks(model) == hooks
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    seen.clear()
    with torch.no_grad():
        after = model(x)
    assert torch.equal(before, after) and seen == [1]
    assert model.encoder.layers[0].self_attention.batch_first


def test_batch_equals_single_images(vit, x):
    blocks = list(vit.encoder.layers)[1:]
    cam = LeGrad(vit, blocks)
    batch = cam(x, [3, 7])
    singles = torch.cat([cam(x[i:i + 1], [c]) for i, c in enumerate([3, 7])])
    torch.testing.assert_close(batch, singles, atol=1e-5, rtol=0)


def test_frozen_parameters_no_grad_and_inference_mode_callers(x):
    model = _vit()
    blocks = list(model.encoder.layers)
    expected = LeGrad(model, blocks)(x, [3, 7])
    for p in model.parameters():
        p.requires_grad_(False)
    torch.testing.assert_close(LeGrad(model, blocks)(x, [3, 7]), expected, atol=1e-6, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(LeGrad(model, blocks)(x, [3, 7]), expected, atol=1e-6, rtol=0)
    with torch.inference_mode():
        torch.testing.assert_close(LeGrad(model, blocks)(x, [3, 7]), expected, atol=1e-6, rtol=0)
    assert not any(p.requires_grad for p in model.parameters())


def test_callable_targets_score_each_blocks_logits(vit, x):
    blocks = list(vit.encoder.layers)
    by_index = LeGrad(vit, blocks)(x, [3, 7])
    by_callable = LeGrad(vit, blocks)(x, [lambda row: row[3], lambda row: row[7]])
    torch.testing.assert_close(by_callable, by_index, atol=1e-6, rtol=0)


def test_default_target_is_the_last_block(vit, x):
    cam = LeGrad(vit)
    assert cam.target_layers == [vit.encoder.layers[-1]]
    torch.testing.assert_close(cam(x, 2), LeGrad(vit, [vit.encoder.layers[-1]])(x, 2))


class _Block(nn.Module):
    def __init__(self, batch_first=True, **kw):
        super().__init__()
        self.self_attention = nn.MultiheadAttention(8, 2, batch_first=batch_first, **kw)

    def forward(self, z):
        return z + self.self_attention(z, z, z, need_weights=False)[0]


class _Tokens(nn.Module):
    """Tokens in, logits out: 1 + 16 tokens of width 8."""

    def __init__(self, **kw):
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 8, stride=8)
        self.block = _Block(**kw)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        z = self.embed(x).flatten(2).transpose(1, 2)
        z = torch.cat([z.mean(1, keepdim=True), z], 1)
        return self.head(self.block(z).mean(1))


def test_a_custom_transformer_with_a_projection(x):
    torch.manual_seed(0)
    model = _Tokens().eval()

    def projection(tokens):
        return model.head(tokens.mean(1))
    ref = _theirs(model, [model.block], x, [0, 3], score_projection=projection)
    torch.testing.assert_close(LeGrad(model, "block", score_projection=projection)(x, [0, 3]),
                               _up(ref, (32, 32)), atol=TOL, rtol=0)
    with pytest.raises(ValueError, match="score_projection"):
        LeGrad(model, "block")          # no ViT head to project with


def test_bad_models_and_arguments(vit, x):
    with pytest.raises(TypeError, match="self_attention"):
        LeGrad(vit, "conv_proj")
    with pytest.raises(TypeError, match="no block"):
        LeGrad(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()))
    with pytest.raises(ValueError, match="batch_first"):
        LeGrad(_Tokens(batch_first=False), "block", score_projection=lambda t: t.mean(1))
    with pytest.raises(ValueError, match="add_bias_kv"):
        LeGrad(_Tokens(add_bias_kv=True), "block", score_projection=lambda t: t.mean(1))
    with pytest.raises(ValueError, match="separate"):
        LeGrad(_Tokens(kdim=4, vdim=4), "block", score_projection=lambda t: t.mean(1))
    with pytest.raises(TypeError, match="prefix_tokens"):
        LeGrad(vit, prefix_tokens=1.0)
    with pytest.raises(ValueError, match="prefix_tokens"):
        LeGrad(vit, prefix_tokens=-1)
    with pytest.raises(TypeError, match="grid_shape"):
        LeGrad(vit, grid_shape=[4, 4])
    with pytest.raises(ValueError, match="grid_shape"):
        LeGrad(vit, grid_shape=(0, 4))
    with pytest.raises(TypeError, match="score_projection"):
        LeGrad(vit, score_projection=3)
    with pytest.raises(ValueError, match="does not hold"):
        LeGrad(vit, grid_shape=(2, 4))(x)
    with pytest.raises(ValueError, match="no patch token"):
        LeGrad(vit, prefix_tokens=17)(x)
    with pytest.raises(ValueError, match="out of range"):
        LeGrad(vit)(x, 10)
    with pytest.raises(ValueError, match="4-D"):
        LeGrad(vit)(x[0])
    train = _vit(attention_dropout=0.1).train()
    with pytest.raises(ValueError, match="dropout"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        LeGrad(train)(x)


def test_the_torchcam_front_end_flow_on_the_recorder(vit, x):
    """What a TorchCAM-style front-end does: hooks open from construction, the
    user's own forward (its graph whole), then one backward per block."""
    blocks = list(vit.encoder.layers)
    ref = _theirs(vit, blocks, x, [3, 7])
    rec = AttentionRecorder(vit, blocks, vit_score_projection(vit), cut=False).open()
    try:
        scores = vit(x)
        P, layer_logits = rec.collected()
        idx = torch.tensor([3, 7])
        grids = legrad_relevance([s.gather(1, idx[:, None])[:, 0] for s in layer_logits], P, 1,
                                 joint=False, retain_graph=True)
        scores[:, 0].sum().backward()       # the user's graph is still whole
    finally:
        rec.close()
    torch.testing.assert_close(_torchcam_normalise(torch.stack(grids).mean(0)), ref, atol=TOL, rtol=0)
    assert rec.token_counts == [17, 17, 17]
    assert _hooks(vit) == _hooks(_vit())
    vit.zero_grad(set_to_none=True)


def test_the_method_contract():
    for owned in ("__call__", "context", "compute_weights"):
        assert owned not in vars(LeGrad)
    assert [m for m in ("channel_weights", "weighted_activations", "maps") if m in vars(LeGrad)] == ["maps"]
    assert not LeGrad.elementwise() and LeGrad.capture == "gradient"


def test_one_forward_per_call(vit, x):
    """The attention hooks ride on the base class's capture pass (capture_scope)."""
    from fastcam.engine import in_pass
    calls = []
    handle = vit.register_forward_pre_hook(lambda m, args: calls.append((args[0].shape[0], in_pass())))
    try:
        LeGrad(vit, list(vit.encoder.layers))(x, [3, 7])
    finally:
        handle.remove()
    assert calls == [(x.shape[0], True)]       # one forward, inside an engine pass


def test_bf16_runs_the_passes_in_bf16_and_stays_close(vit, x):
    from fastcam.engine import cpu_supports
    if not cpu_supports(torch.bfloat16):
        pytest.skip("this CPU runs no bf16 autocast")
    blocks = list(vit.encoder.layers)
    half = LeGrad(vit, blocks, precision="bf16")(x, [3, 7])
    assert half.dtype == torch.float32 and half.shape == (2, 32, 32)
    assert (half - LeGrad(vit, blocks)(x, [3, 7])).abs().max() < 0.1
