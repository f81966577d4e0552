"""The execution engine: precision, memory format, compiled forwards, the
calibrated chunk, and the user's model left exactly as given."""
import gc
import weakref

import pytest
import torch
from torch import nn

import fastcam
from fastcam import engine as engine_mod
from fastcam.engine import Engine, check_precision

ALL = ["cam", "gradcam", "gradcam++", "scorecam", "liftcam", "shapcam", "opticam", "advise"]
# Shap-CAM with the zero baseline and logit worth: on this untrained net the mean
# baseline's game is empty (v(∅) = v(all), Σφ = 0) and the probability worths differ
# by ~1e-4, so a min-max map of φ would magnify 1e-8 of rounding to 1e-4
FAST = {"opticam": {"max_iter": 3}, "shapcam": {"permutations": 2, "baseline": "zero", "worth": "logit"},
        "scorecam": {"batch_size": 4}}
BF16 = engine_mod.cpu_supports(torch.bfloat16)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5)).eval()


def _explain(model, x, method, **kw):
    return fastcam.explain(model, x, method=method, target_layers="3", targets=[1, 2],
                           **{**FAST.get(method, {}), **kw})


def _state(model: nn.Module):
    """Everything a call could change in a model, as comparable values."""
    return {
        "params": [(n, p.dtype, p.stride(), p.requires_grad, p.is_contiguous(), p.detach().clone())
                   for n, p in model.named_parameters()],
        "buffers": [(n, b.dtype, b.stride(), b.clone()) for n, b in model.named_buffers()],
        "training": [m.training for m in model.modules()],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
                   len(m._backward_pre_hooks)) for m in model.modules()],
        "grads": [p.grad is None for p in model.parameters()],
    }


def _assert_same_state(a, b):
    assert [x[:5] for x in a["params"]] == [x[:5] for x in b["params"]]
    for (_, *_, va), (_, *_, vb) in zip(a["params"], b["params"]):
        assert torch.equal(va, vb)
    assert [x[:3] for x in a["buffers"]] == [x[:3] for x in b["buffers"]]
    for x, y in zip(a["buffers"], b["buffers"]):
        assert torch.equal(x[3], y[3])
    assert a["training"] == b["training"] and a["hooks"] == b["hooks"] and a["grads"] == b["grads"]


# -- precision names and device support ------------------------------------------------------

def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match="precision must be one of"):
        check_precision("int8")
    with pytest.raises(ValueError, match="precision must be one of"):
        fastcam.GradCAM(_net(), "3", precision="float32")


def test_a_precision_the_cpu_cannot_run_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setattr(engine_mod.precision, "cpu_supports", lambda dtype: False)
    cam = fastcam.GradCAM(_net(), "3", precision="bf16")   # the device is known at the call
    with pytest.raises(ValueError, match="cannot run on cpu"):
        cam(torch.rand(1, 3, 8, 8), targets=[0])
    assert check_precision("fp32", torch.device("cpu")) is None


def test_fp32_runs_without_autocast():
    e = Engine(_net())
    with e.running(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")


@pytest.mark.skipif(not BF16, reason="this CPU has no native bf16")
def test_bf16_runs_the_network_under_autocast_and_returns_float32():
    model = _net()
    e = Engine(model, precision="bf16")
    x = torch.rand(2, 3, 9, 7)
    out = e.forward(x)
    assert out.dtype == torch.float32
    acts, logits = e.capture(x, [model[3]], grad=False)
    assert acts[0].dtype == torch.bfloat16 and logits.dtype == torch.float32
    torch.testing.assert_close(out, Engine(model).forward(x), atol=0.05, rtol=0.05)


# -- memory format and half-precision weights ------------------------------------------------

def test_a_conv_network_gets_a_channels_last_input_and_gradients_still_reach_it():
    e = Engine(_net())
    x = torch.rand(2, 3, 5, 5, requires_grad=True)
    xp = e.prepare(x)
    assert xp.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous(memory_format=torch.channels_last)
    out = e.forward(x, grad=True)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert g.shape == x.shape and bool(g.abs().sum() > 0)
    assert not Engine(_net(), channels_last=False).prepare(x).is_contiguous(memory_format=torch.channels_last)
    mlp = Engine(nn.Sequential(nn.Flatten(), nn.Linear(75, 2)))
    assert mlp.prepare(x) is x                      # no conv: the input as given


@pytest.mark.parametrize("method", ALL)
def test_channels_last_maps_equal_nchw_maps(method):
    model, x = _net(), torch.rand(2, 3, 13, 11)
    cam = fastcam.METHODS[method](model, "3", **FAST.get(method, {}))
    cl = cam(x, targets=[1, 2])
    cam.engine.channels_last = False
    nchw = cam(x, targets=[1, 2])
    torch.testing.assert_close(cl, nchw, atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("method", ALL)
def test_a_half_precision_model_takes_float32_images_and_gives_float32_maps(method, dtype):
    model = _net().to(dtype)
    maps = _explain(model, torch.rand(2, 3, 12, 12), method)
    assert maps.dtype == torch.float32 and maps.shape == (2, 12, 12)
    assert bool(torch.isfinite(maps).all()) and 0 <= float(maps.amin()) and float(maps.amax()) <= 1
    assert all(p.dtype == dtype for p in model.parameters())


# -- the user's model is left as given --------------------------------------------------------

@pytest.mark.parametrize("precision", ["fp32"] + (["bf16"] if BF16 else []))
@pytest.mark.parametrize("method", ALL)
def test_the_users_model_is_unchanged_after_a_call_and_after_an_error(method, precision):
    model = _net()
    model[3].weight.requires_grad_(False)           # a partly frozen model stays partly frozen
    before = _state(model)
    maps = _explain(model, torch.rand(2, 3, 12, 12), method, precision=precision)
    assert maps.dtype == torch.float32
    _assert_same_state(before, _state(model))
    with pytest.raises(ValueError):
        fastcam.explain(model, torch.rand(2, 3, 12, 12), method=method, target_layers="3",
                        targets=[1, 99], precision=precision, **FAST.get(method, {}))
    _assert_same_state(before, _state(model))


def test_a_model_in_training_mode_keeps_its_mode_and_statistics_under_bf16():
    model = _net().train()
    before = _state(model)
    with pytest.warns(UserWarning, match="training mode"):
        _explain(model, torch.rand(2, 3, 12, 12), "scorecam", precision="bf16" if BF16 else "fp32")
    _assert_same_state(before, _state(model))


# -- the calibrated chunk ---------------------------------------------------------------------

class _Recorder:
    """A build function that records the chunk sizes asked of it."""

    def __init__(self, x):
        self.x, self.sizes = x, []

    def __call__(self, a, b):
        self.sizes.append(b - a)
        return self.x[a:b]


def _stream(e, x, bound):
    rec = _Recorder(x)
    s = e.stream_scores(len(x), rec, torch.zeros(len(x), dtype=torch.long),
                        lambda out, i: out[:, 0], bound)
    return s, rec.sizes[1:]                         # sizes[0] is the calibration's sample row


def test_the_chunk_is_calibrated_within_the_bound_and_the_scores_do_not_change():
    model = _net()
    x = torch.rand(200, 3, 6, 6)
    e = Engine(model)
    s, sizes = _stream(e, x, 16)
    assert sizes[:6] == [4, 4, 8, 8, 16, 16]        # each candidate twice, the second timed
    assert max(sizes) <= 16 and sum(sizes) == 200
    best = sizes[6]
    assert set(sizes[6:-1]) == {best}
    with torch.inference_mode():
        torch.testing.assert_close(s, model(x)[:, 0], atol=1e-5, rtol=1e-5)
    s2, sizes2 = _stream(Engine(model), x, 16)      # the times are kept for this network
    assert set(sizes2[:-1]) == {best}
    torch.testing.assert_close(s2, s, atol=1e-5, rtol=1e-5)
    _, small = _stream(Engine(model), x, 4)         # a smaller bound is always kept
    assert max(small) <= 4


def test_a_call_too_small_to_calibrate_runs_at_the_bound_and_times_nothing():
    model = _net()
    x = torch.rand(10, 3, 6, 6)
    _, sizes = _stream(Engine(model), x, 8)
    assert sizes == [8, 2]
    assert not any(engine_mod.core._CHUNK_TIMES.get(model, {}).values())


def test_chunk_size_below_one_is_an_error():
    with pytest.raises(ValueError, match="chunk_size"):
        Engine(_net()).stream_scores(3, lambda a, b: torch.rand(b - a, 3, 4, 4),
                                     torch.zeros(3, dtype=torch.long), lambda o, i: o[:, 0], 0)


# -- compile -------------------------------------------------------------------------------------

def test_compiled_forwards_are_cached_per_model_with_its_graph_and_free_the_model(monkeypatch):
    calls = []

    def fake_compile(module, **options):            # torch.compile's contract: a callable module
        calls.append((module, options))
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = _net()
    x = torch.rand(3, 3, 6, 6)
    a = Engine(model, compile=True).forward(x)
    b = Engine(model, compile=True).forward(x)
    assert len(calls) == 1                           # compiled once for both engines ...
    compiled, options = calls[0]
    assert compiled is not model and options == {"options": {"freezing": True}}  # the graph
    torch.testing.assert_close(a, b)
    Engine(model, compile=True).capture(x, [model[3]], grad=False)
    assert len(calls) == 1                           # hooked passes run the graph uncompiled
    ref = weakref.ref(model)
    del model, compiled, calls[:]
    gc.collect()
    assert ref() is None                             # the cache keeps no model alive


def test_a_model_that_runs_as_given_is_compiled_per_engine(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "compile", lambda module, **o: calls.append(module) or module)
    model = _net()
    x = torch.rand(3, 3, 6, 6)
    Engine(model, compile=True, inference_graph=False).forward(x)
    Engine(model, compile=True, inference_graph=False).forward(x)
    assert calls == [model, model]                   # a cache would hold the model for ever


# -- the metrics' precision ----------------------------------------------------------------------

@pytest.mark.skipif(not BF16, reason="this CPU has no native bf16")
def test_metrics_take_a_precision_and_an_engine_of_another_is_an_error():
    from fastcam.metrics import average_drop, deletion_auc

    model, x = _net(), torch.rand(3, 3, 12, 12)
    maps = torch.rand(3, 12, 12)
    fp32 = average_drop(model, x, maps, [0, 1, 2])
    bf16 = average_drop(model, x, maps, [0, 1, 2], precision="bf16")
    assert not torch.equal(fp32, bf16)
    torch.testing.assert_close(bf16, fp32, atol=0.05, rtol=0)
    via_engine = deletion_auc(Engine(model, precision="bf16"), x, maps, [0, 1, 2], steps=4)
    torch.testing.assert_close(via_engine, deletion_auc(model, x, maps, [0, 1, 2], steps=4,
                                                        precision="bf16"))
    with pytest.raises(ValueError, match="asked for an Engine that runs 'bf16'"):
        average_drop(Engine(model, precision="bf16"), x, maps, [0, 1, 2], precision="fp16")
