"""The method contract: a method defines channel_weights, weighted_activations or maps
of one CallContext;
the base class owns the call, the capture pass and the record."""
import pytest
import torch
from torch import nn

import fastcam
from fastcam.methods import METHODS, BaseCAM
from fastcam.methods.base import CallContext
from fastcam.ops import cam_combine


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 4)).eval()


@pytest.mark.parametrize("name", sorted(set(METHODS)))
def test_no_method_replaces_the_call_or_the_capture(name):
    cls = METHODS[name]
    for owned in ("__call__", "context", "compute_weights"):
        assert owned not in vars(cls), f"{cls.__name__} overrides BaseCAM.{owned}"
    defined = [m for m in ("channel_weights", "weighted_activations", "maps") if m in vars(cls)]
    assert len(defined) == 1, (cls.__name__, defined)
    assert cls.elementwise() == (defined == ["weighted_activations"])
    assert cls.capture in ("gradient", "forward", "split")


class _MeanWeights(BaseCAM):
    """Every channel weighted 1/K: a method defined by its weights alone."""

    capture = "forward"

    def channel_weights(self, ctx: CallContext):
        assert not ctx.activations[0].requires_grad
        ctx.extra["seen_batch"] = ctx.x.shape[0]
        K = ctx.activations[0].shape[1]
        return [torch.full((ctx.x.shape[0], K), 1.0 / K)]


def test_a_method_defined_by_its_weights_gets_maps_and_a_record():
    model = _net()
    x = torch.rand(3, 3, 9, 7)
    cam = _MeanWeights(model, "2")
    maps = cam(x, targets=[0, 1, 2])
    A = cam.last.activations[0]
    expected = cam_combine(A, torch.full((3, 5), 0.2), (9, 7))
    torch.testing.assert_close(maps, expected)
    torch.testing.assert_close(cam.last.logits, model(x))
    assert cam.last.targets.tolist() == [0, 1, 2]
    torch.testing.assert_close(cam.last.scores, model(x)[torch.arange(3), [0, 1, 2]])
    torch.testing.assert_close(cam.last.low_res[0], torch.relu(A.mean(1)))
    assert cam.last.extra == {"seen_batch": 3}


def test_the_gradient_capture_attaches_the_scores_to_the_activations():
    seen = {}

    class _Probe(BaseCAM):
        def channel_weights(self, ctx):
            seen["grad"] = ctx.activations[0].requires_grad and ctx.scores.requires_grad
            return [torch.ones(ctx.x.shape[0], ctx.activations[0].shape[1])]

    with torch.no_grad():                 # the caller's grad mode does not matter
        _Probe(_net(), "2")(torch.rand(2, 3, 8, 8))
    assert seen["grad"]


def test_a_method_without_weights_or_maps_says_so():
    class _Empty(BaseCAM):
        pass

    with pytest.raises(NotImplementedError, match="neither channel_weights nor maps"):
        _Empty(_net(), "2")(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize("name", ["cam", "gradcam", "scorecam", "liftcam", "shapcam", "opticam"])
def test_every_method_warns_on_a_model_in_training_mode(name):
    model = _net().train()
    options = {"max_iter": 2} if name == "opticam" else {}
    if name == "shapcam":
        options = {"permutations": 2}
    with pytest.warns(UserWarning, match="training mode"):
        fastcam.explain(model, torch.rand(2, 3, 8, 8), method=name, target_layers="2", **options)


class _HalfTerms(BaseCAM):
    """An element-wise method: T = A / 2 at every position."""

    capture = "forward"

    def weighted_activations(self, ctx: CallContext):
        return [A / 2 for A in ctx.activations]


def test_a_method_defined_by_its_weighted_activations_sums_them_over_channels():
    model = _net()
    x = torch.rand(2, 3, 9, 7)
    cam = _HalfTerms(model, "2")
    maps = cam(x, targets=[0, 1])
    A = cam.last.activations[0]
    torch.testing.assert_close(maps, cam_combine(A, torch.full((2, 5), 0.5), (9, 7)))
    torch.testing.assert_close(cam.last.low_res[0], torch.relu(A.sum(1) / 2))
    assert cam.last.weights == []
    run = cam.compute_weights(x, [0, 1])
    torch.testing.assert_close(run.terms[0], A / 2)
    assert run.weights == []
