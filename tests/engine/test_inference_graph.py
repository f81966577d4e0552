"""The inference graph (fastcam.engine.graph): every pass runs on a copy of the model
with batch norm folded, frozen parameters and channels-last weights. Its maps equal
those of the model as given, it follows every change of the model, never changes
the model, and never keeps it alive."""
import functools
import gc
import weakref

import pytest
import torch
import torchvision
from torch import nn

import fastcam
from fastcam.engine import Engine, cpu_supports, graph_status, in_pass, refresh
from fastcam.engine.graph import _GRAPHS
from fastcam.methods import METHODS
from fastcam.network.fold import fold_batchnorm, foldable_pairs, folded_conv_parameters

_ARCHS = {"resnet18": (torchvision.models.resnet18, "layer4"),
          "vgg11_bn": (torchvision.models.vgg11_bn, "features.27"),
          "mobilenet_v2": (torchvision.models.mobilenet_v2, "features.18")}
#: small budgets; the deterministic methods must match within 1e-4, the others in correlation
_DETERMINISTIC = {"gradcam": {}, "gradcam++": {}, "xgradcam": {}, "layercam": {}, "liftcam": {},
                  "scorecam": dict(batch_size=64), "shapcam": dict(permutations=2, seed=0),
                  "ablationcam": dict(batch_size=64)}
_AMPLIFYING = {"opticam": dict(max_iter=5), "advise": {}}


def _randomised_bn(model: nn.Module) -> nn.Module:
    """Batch-norm statistics and affine parameters far from the identity, so that a
    wrong fold shows."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model.eval()


@functools.lru_cache(maxsize=None)
def _model(arch: str) -> nn.Module:
    torch.manual_seed(0)
    return _randomised_bn(_ARCHS[arch][0](num_classes=10))


def _x(b: int = 2, size: int = 64) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(2))


def _as_given(cam):
    cam.engine.inference_graph = False
    return cam


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


def _state(model: nn.Module) -> list:
    return [(n, t.clone(), t.requires_grad, t.is_contiguous(), t.is_contiguous(
        memory_format=torch.channels_last)) for n, t in list(model.named_parameters())
        + list(model.named_buffers())] + [model.training] + [
        len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]


def _same_state(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x[1], y[1]) and x[0] == y[0] and x[2:] == y[2:] if isinstance(x, tuple) else x == y
        for x, y in zip(a, b))


# -- the folding algebra -----------------------------------------------------------------

@pytest.mark.parametrize("groups,bias,affine", [(1, True, True), (3, False, True), (1, True, False),
                                                (6, False, False)])
def test_folded_parameters_equal_conv_then_batch_norm(groups, bias, affine):
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 6, 3, padding=1, groups=groups, bias=bias)
    bn = _randomised_bn(nn.Sequential(nn.BatchNorm2d(6, affine=affine)))[0] if affine else \
        nn.BatchNorm2d(6, affine=False).eval()
    if not affine:
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
    w, b = folded_conv_parameters(conv, bn)
    x = torch.randn(2, 6, 7, 5)
    torch.testing.assert_close(nn.functional.conv2d(x, w, b, padding=1, groups=groups),
                               bn(conv(x)), atol=1e-5, rtol=1e-5)


class _Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it; its Sequential still folds."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.conv = nn.Conv2d(4, 4, 1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.body(x)
        if h.sum() > 0:
            h = self.bn(self.conv(h))
        return self.fc(h.mean((2, 3)))


class _Shared(nn.Module):
    """A convolution whose output feeds its batch norm and a skip; a batch norm
    without running statistics; a convolution called twice."""

    def __init__(self):
        super().__init__()
        self.a, self.bn_a = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)
        self.b, self.bn_b = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3, track_running_stats=False)
        self.c, self.bn_c = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)
        self.d, self.bn_d = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)

    def forward(self, x):
        a = self.a(x)
        h = self.bn_a(a) + a
        h = self.bn_b(self.b(h))
        h = self.c(self.c(h))
        return self.bn_c(h) + self.bn_d(self.d(h))


def test_only_certain_pairs_fold():
    assert foldable_pairs(_Shared().eval()) == [("d", "bn_d")]
    assert foldable_pairs(_Untraceable().eval()) == [("body.0", "body.1")]
    assert foldable_pairs(_Shared().eval(), protected={"d"}) == []
    model = torchvision.models.resnet18().eval()
    pairs = foldable_pairs(model)
    assert len(pairs) == 20 and ("conv1", "bn1") in pairs and ("layer2.0.downsample.0",
                                                               "layer2.0.downsample.1") in pairs


def test_folding_a_copy_keeps_its_function():
    torch.manual_seed(0)
    model = _randomised_bn(_Untraceable())
    import copy
    folded = copy.deepcopy(model)
    assert fold_batchnorm(folded) == [("body.0", "body.1")]
    assert isinstance(folded.body[1], nn.Identity)
    x = torch.rand(2, 3, 9, 9)
    torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-5)


# -- maps equal the model as given ---------------------------------------------------------

@pytest.mark.parametrize("arch", list(_ARCHS))
@pytest.mark.parametrize("method", list(_DETERMINISTIC))
def test_deterministic_maps_equal_the_model_as_given(arch, method):
    if method in ("scorecam", "ablationcam") and arch != "resnet18":
        pytest.skip("one architecture for the costliest: the K-pass loops are the same code")
    model, layer = _model(arch), _ARCHS[arch][1]
    if method == "scorecam":
        layer = "layer2"                 # 128 channels: 256 masked passes per model
    opts = _DETERMINISTIC[method]
    x = _x()
    on_graph = METHODS[method](model, layer, **opts)(x, [1, 2])
    assert graph_status(model).startswith("inference graph"), graph_status(model)
    as_given = _as_given(METHODS[method](model, layer, **opts))(x, [1, 2])
    torch.testing.assert_close(on_graph, as_given, atol=1e-4, rtol=0)


@pytest.mark.parametrize("method", list(_AMPLIFYING))
def test_argmax_and_iterative_methods_correlate_with_the_model_as_given(method):
    model, layer = _model("resnet18"), "layer4"
    x = _x()
    on_graph = METHODS[method](model, layer, **_AMPLIFYING[method])(x, [1, 2])
    as_given = _as_given(METHODS[method](model, layer, **_AMPLIFYING[method]))(x, [1, 2])
    assert _corr(on_graph, as_given) >= 0.999


def test_metrics_equal_the_model_as_given():
    from fastcam.metrics import average_drop, deletion_auc
    model = _model("mobilenet_v2")
    x, maps = _x(), torch.rand(2, 64, 64, generator=torch.Generator().manual_seed(3))
    for metric, kw in ((average_drop, {}), (deletion_auc, dict(steps=4))):
        torch.testing.assert_close(metric(model, x, maps, [1, 2], **kw),
                                   metric(Engine(model, inference_graph=False), x, maps, [1, 2], **kw),
                                   atol=1e-4, rtol=0)


@pytest.mark.skipif(not cpu_supports(torch.bfloat16), reason="this CPU has no native bf16")
def test_half_precision_runs_the_model_as_given():
    # folded, the bias b' = β − μ·s would be rounded to bf16 as a whole (fastcam.network.fold)
    model = _model("resnet18")
    x = _x()
    bf16 = fastcam.GradCAM(model, "layer4", precision="bf16")(x, [1, 2])
    assert graph_status(model) == "as given: precision='bf16' does not fold batch norm"
    torch.testing.assert_close(bf16, _as_given(fastcam.GradCAM(model, "layer4", precision="bf16"))(
        x, [1, 2]), atol=0, rtol=0)
    half = _randomised_bn(torchvision.models.resnet18(num_classes=10)).to(torch.bfloat16)
    assert foldable_pairs(half) == []


# -- what is folded, and when the model runs as given -------------------------------------------

def test_a_convolution_target_layer_keeps_its_own_activation():
    model = _model("resnet18")
    x = _x()
    cam = fastcam.GradCAM(model, "layer4.1.conv2")
    ctx = cam.compute_weights(x, [1, 2])
    graph = cam.engine.graph([model.layer4[1].conv2])
    assert ("layer4.1.conv2", "layer4.1.bn2") not in graph.folded and len(graph.folded) == 19
    with torch.no_grad():
        stem = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        inner = model.layer4[0](model.layer3(model.layer2(model.layer1(stem))))
        expected = model.layer4[1].conv2(model.layer4[1].relu(model.layer4[1].bn1(
            model.layer4[1].conv1(inner))))
    torch.testing.assert_close(ctx.activations[0], expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cam(x, [1, 2]), _as_given(fastcam.GradCAM(model, "layer4.1.conv2"))(
        x, [1, 2]), atol=1e-4, rtol=0)


def test_gradient_methods_record_no_autograd_before_the_target_layer():
    model = _model("resnet18")
    ctx = fastcam.GradCAM(model, "layer4").compute_weights(_x(), [1, 2])
    assert ctx.activations[0].is_leaf            # the prefix ran without a graph
    ctx = _as_given(fastcam.GradCAM(model, "layer4")).compute_weights(_x(), [1, 2])
    assert not ctx.activations[0].is_leaf        # the model as given records one
    assert all(p.grad is None for p in model.parameters())


def test_train_mode_hooks_and_models_without_batch_norm_run_as_given():
    model = _model("resnet18")
    x = _x()
    model.train()
    try:
        with pytest.warns(UserWarning, match="training mode"):
            fastcam.GradCAM(model, "layer4")(x, [1, 2])
        assert graph_status(model) == "as given: module 'resnet18' is in training mode" or \
            graph_status(model).startswith("as given: module") and "training" in graph_status(model)
    finally:
        model.eval()
    handle = model.layer1.register_forward_hook(lambda *a: None)
    try:
        fastcam.GradCAM(model, "layer4")(x, [1, 2])
        assert graph_status(model) == "as given: module 'layer1' has hooks"
    finally:
        handle.remove()
    plain = torchvision.models.vgg11(num_classes=10).eval()
    fastcam.GradCAM(plain, "features.18")(_x(1), [0])
    assert graph_status(plain) == "as given: no convolution followed by a foldable batch norm"
    assert plain not in _GRAPHS or all(g.module is None for g in _GRAPHS[plain].values())


def test_every_pass_on_the_graph_runs_in_the_engine():
    model = _model("resnet18")
    graph = Engine(model).graph([model.layer4])
    outside = []
    handles = [m.register_forward_pre_hook(lambda m, args: outside.append(m) if not in_pass()
                                           and not any(isinstance(a, torch.fx.Proxy) for a in args)
                                           else None) for m in graph.module.modules()]
    try:
        for name in ("gradcam", "liftcam", "shapcam", "opticam", "ablationcam"):
            opts = dict(_DETERMINISTIC, **_AMPLIFYING).get(name, {})
            METHODS[name](model, "layer4", **dict(opts, **({"max_iter": 2} if name == "opticam"
                                                            else {})))(_x(1), [1])
            assert Engine(model).graph([model.layer4]) is graph      # shared, not rebuilt
    finally:
        for h in handles:
            h.remove()
    assert outside == []


# -- staleness ------------------------------------------------------------------------------

def test_a_changed_parameter_or_buffer_rebuilds_the_graph():
    torch.manual_seed(0)
    model = _randomised_bn(torchvision.models.resnet18(num_classes=10))
    x = _x()
    cam = fastcam.GradCAM(model, "layer4")
    first = cam(x, [1, 2])
    with torch.no_grad():                              # an optimizer-style in-place write
        model.layer4[1].conv2.weight.mul_(-1)
    second = cam(x, [1, 2])
    assert not torch.allclose(first, second, atol=1e-3)
    torch.testing.assert_close(second, _as_given(fastcam.GradCAM(model, "layer4"))(x, [1, 2]),
                               atol=1e-4, rtol=0)
    with torch.no_grad():                              # a batch-norm buffer
        model.layer4[1].bn2.running_mean.add_(0.5)
    third = cam(x, [1, 2])
    torch.testing.assert_close(third, _as_given(fastcam.GradCAM(model, "layer4"))(x, [1, 2]),
                               atol=1e-4, rtol=0)
    model.load_state_dict(_randomised_bn(torchvision.models.resnet18(num_classes=10)).state_dict())
    torch.testing.assert_close(cam(x, [1, 2]), _as_given(fastcam.GradCAM(model, "layer4"))(
        x, [1, 2]), atol=1e-4, rtol=0)
    model.fc = nn.Linear(512, 10)                      # a replaced module
    torch.testing.assert_close(cam(x, [1, 2]), _as_given(fastcam.GradCAM(model, "layer4"))(
        x, [1, 2]), atol=1e-4, rtol=0)


def test_a_write_through_data_needs_refresh():
    torch.manual_seed(0)
    model = _randomised_bn(torchvision.models.resnet18(num_classes=10))
    x = _x()
    cam = fastcam.GradCAM(model, "layer4")
    before = cam(x, [1, 2])
    model.layer4[1].bn2.weight.data.mul_(-1)           # invisible to version counters
    torch.testing.assert_close(cam(x, [1, 2]), before)  # documented: stale until refresh
    refresh(model)
    torch.testing.assert_close(cam(x, [1, 2]), _as_given(fastcam.GradCAM(model, "layer4"))(
        x, [1, 2]), atol=1e-4, rtol=0)


# -- the user's model is never changed, and never kept alive ------------------------------

def test_the_users_model_is_unchanged_by_every_call():
    torch.manual_seed(0)
    model = _randomised_bn(torchvision.models.mobilenet_v2(num_classes=10))
    before = _state(model)
    x = _x()
    for name, opts in (("gradcam", {}), ("liftcam", {}), ("opticam", dict(max_iter=2)),
                       ("shapcam", dict(permutations=1, seed=0))):
        METHODS[name](model, "features.18", **opts)(x, [1, 2])
        assert _same_state(before, _state(model)), name


def test_the_cache_keeps_no_model_alive():
    model = _randomised_bn(torchvision.models.resnet18(num_classes=10))
    fastcam.GradCAM(model, "layer4")(_x(1), [0])
    assert model in _GRAPHS
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_observed_convolutions_stay_unfolded_without_blocking_other_explainers():
    model = _model("resnet18")
    x = _x(1)
    every_conv = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    fastcam.GradCAM(model, every_conv[:3])(x, [0])            # three convolutions observed
    graph = Engine(model).graph([model.get_submodule(n) for n in every_conv[:3]])
    assert not any(c in every_conv[:3] for c, _ in graph.folded) and len(graph.folded) == 17
    kept = Engine(model).graph([model.layer4])               # one more explainer: no rebuild
    assert kept is graph
    engine = Engine(model)
    assert engine.graph([model.get_submodule(n) for n in every_conv]) is None   # all observed
    assert graph_status(model) == "as given: no convolution followed by a foldable batch norm"
    again = engine.graph([model.layer4])                     # that did not block the next one
    assert again is not None and len(again.folded) == 20


def test_a_graph_first_built_under_inference_mode_serves_gradient_methods():
    torch.manual_seed(0)
    model = _randomised_bn(torchvision.models.resnet18(num_classes=10))
    x = _x(1)
    with torch.inference_mode():
        Engine(model).forward(x)                  # the first pass builds the graph
    assert all(not p.is_inference() for p in Engine(model).graph().module.parameters())
    torch.testing.assert_close(fastcam.GradCAM(model, "layer4")(x, [1]),
                               _as_given(fastcam.GradCAM(model, "layer4"))(x, [1]), atol=1e-4, rtol=0)
