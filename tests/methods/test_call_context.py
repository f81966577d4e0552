"""The call context owns what every method reads: the gradients of the explained
score (computed once, on first use), the score itself (a method's
``target_scores``), and a recorded context for front-ends that ran the forward
and backward themselves. A method's weights are a function of the context alone."""
import pytest
import torch
from torch import nn

from fastcam.methods import METHODS, BaseCAM, GradCAM
from fastcam.methods.base import CallContext
from fastcam.targets import Targets


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 5, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 4)).eval()


def test_the_gradients_are_computed_once_and_are_those_of_the_scores():
    model, x = _net(), torch.rand(2, 3, 7, 9)
    seen = {}

    class _Probe(BaseCAM):
        def channel_weights(self, ctx):
            seen["same"] = ctx.gradients is ctx.gradients
            seen["g"] = ctx.gradients[0]
            seen["A"] = ctx.activations[0].detach()
            return [g.mean(dim=(2, 3)) for g in ctx.gradients]

    _Probe(model, "2")(x, [1, 3])
    assert seen["same"]
    A = seen["A"].clone().requires_grad_(True)
    tail = nn.Sequential(*list(model)[3:])
    scores = tail(A)[torch.arange(2), [1, 3]]
    expected, = torch.autograd.grad(scores.sum(), A)
    torch.testing.assert_close(seen["g"], expected)


def test_a_method_explaining_another_score_overrides_target_scores():
    model, x = _net(), torch.rand(2, 3, 8, 8)

    class _Negated(GradCAM):
        def target_scores(self, ctx):
            return -ctx.targets.scores(ctx.logits)

    plain = GradCAM(model, "2").compute_weights(x, [0, 2])
    negated = _Negated(model, "2")
    ctx = negated.compute_weights(x, [0, 2])
    torch.testing.assert_close(ctx.weights[0], -plain.weights[0])
    negated(x, [0, 2])
    torch.testing.assert_close(negated.last.scores, -model(x)[torch.arange(2), [0, 2]])


def test_a_recorded_context_needs_gradients_or_scores():
    A = torch.rand(1, 5, 4, 4)
    ctx = CallContext.recorded([nn.Identity()], [A], Targets(torch.tensor([0]), None))
    with pytest.raises(ValueError, match="neither gradients nor scores"):
        ctx.gradients
    with pytest.raises(ValueError, match="no input"):
        ctx.size
    with pytest.raises(ValueError, match="2 gradients for 1 activations"):
        CallContext.recorded([nn.Identity()], [A], Targets(torch.tensor([0]), None),
                             gradients=[A, A])


def test_a_gradient_capture_is_needed_to_differentiate():
    model = _net()

    class _Forward(BaseCAM):
        capture = "forward"

        def channel_weights(self, ctx):
            return ctx.gradients

    with pytest.raises(ValueError, match="no autograd graph"):
        _Forward(model, "2")(torch.rand(1, 3, 8, 8))


#: gradient methods whose weights read only the activations, their gradients and targets
_WEIGHT_METHODS = sorted(n for n, cls in METHODS.items()
                         if cls.capture == "gradient" and not cls.input_gradient
                         and cls.maps is BaseCAM.maps
                         and n not in ("smoothgradcampp", "shapleycam", "randomcam", "fakecam"))


@pytest.mark.parametrize("name", _WEIGHT_METHODS)
def test_a_methods_weights_are_a_function_of_the_context_alone(name):
    """The weights of a call equal the method's weight function on a context made only of
    the recorded activations, their gradients and the targets (what a front-end hands over)."""
    model, x, targets = _net(), torch.rand(3, 3, 8, 8), [0, 1, 3]
    cam = METHODS[name](model, "2")
    ctx = cam.compute_weights(x, targets)
    full = ctx.terms if cam.elementwise() else ctx.weights
    A = ctx.activations[0].detach().clone().requires_grad_(True)
    scores = nn.Sequential(*list(model)[3:])(A)[torch.arange(3), targets]
    g, = torch.autograd.grad(scores.sum(), A)
    recorded = CallContext.recorded(ctx.layers, [A.detach()], ctx.targets, gradients=[g],
                                    logits=ctx.logits.detach())
    alone = cam.weighted_activations(recorded) if cam.elementwise() else cam.channel_weights(recorded)
    torch.testing.assert_close(alone[0].detach(), full[0].detach())


@pytest.mark.parametrize("name", ["finercam", "refinecam"])
def test_a_composite_method_shares_its_engine_with_its_base_method(name):
    model = _net()
    cam = METHODS[name](model, ["0", "2"] if name == "refinecam" else "2", precision="fp32")
    assert cam.base.engine is cam.engine
    maps = cam(torch.rand(2, 3, 8, 8), [0, 1])
    assert maps.shape == (2, 8, 8) and cam.last.weights
