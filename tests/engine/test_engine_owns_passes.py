"""The engine owns every pass of the user's model: every module of the model runs
inside an engine pass (:func:`fastcam.engine.in_pass`), for every method, at a
last-block layer and at a mid-block layer whose split has side inputs, in fp32
and bf16. The documented exceptions are the target-layer search's dry run
(target layers are given here) and the split's first-call check, which runs
inside the engine's split capture anyway."""
import pytest
import torch
from torch import nn

from fastcam import metrics
from fastcam.engine import cpu_supports, in_pass
from fastcam.methods import METHODS


class _Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.conv2(torch.relu(self.bn(self.conv1(x)))))


class _ResNetLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.block = _Block(6)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(self.pool(self.block(torch.relu(self.stem(x)))).flatten(1))


#: small budgets: this test checks where passes run, not what they compute
_OPTIONS = {"scorecam": dict(batch_size=8), "opticam": dict(max_iter=2),
            "shapcam": dict(permutations=2, chunk_size=8), "sscam": dict(num_samples=2),
            "iscam": dict(num_samples=2), "smoothgradcampp": dict(num_samples=2),
            "ablationcam": dict(batch_size=4)}
#: methods that need another kind of model (a ViT's attention blocks)
_OTHER_MODELS = {"legrad"}


def _guarded(model: nn.Module) -> list[str]:
    """Forward pre-hooks on every module recording a call outside an engine pass
    (torch.fx's symbolic trace of the split calls modules on proxies: not a pass)."""
    outside: list[str] = []

    def check(name: str, args: tuple) -> None:
        if not in_pass() and not any(isinstance(a, torch.fx.Proxy) for a in args):
            outside.append(name or "<model>")

    for name, module in model.named_modules():
        module.register_forward_pre_hook(lambda m, args, name=name: check(name, args))
    return outside


def _layers(name: str, where: str) -> list[str]:
    layer = "block" if where == "last" else "block.conv1"
    return ["block.conv1", "block"] if name == "refinecam" else [layer]


_PRECISIONS = ["fp32"] + (["bf16"] if cpu_supports(torch.bfloat16) else [])


@pytest.mark.parametrize("precision", _PRECISIONS)
@pytest.mark.parametrize("where", ["last", "mid-block"])
@pytest.mark.parametrize("name", sorted(set(METHODS) - _OTHER_MODELS))
def test_every_model_pass_of_a_method_runs_in_the_engine(name, where, precision):
    torch.manual_seed(0)
    model = _ResNetLike().eval()
    outside = _guarded(model)
    cam = METHODS[name](model, _layers(name, where), precision=precision,
                        **_OPTIONS.get(name, {}))
    maps = cam(torch.rand(2, 3, 12, 12), [1, 2])   # ADVISE's SSIM needs >= 11 px
    assert maps.shape == (2, 12, 12)
    assert outside == [], f"{name}: modules ran outside an engine pass: {sorted(set(outside))}"


def test_the_metrics_passes_run_in_the_engine():
    torch.manual_seed(0)
    model = _ResNetLike().eval()
    outside = _guarded(model)
    x, maps = torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8)
    metrics.average_drop(model, x, maps, [1, 2])
    metrics.average_drop_in_deletion(model, x, maps, [1, 2])
    metrics.deletion_auc(model, x, maps, [1, 2], steps=4)
    metrics.insertion_auc(model, x, maps, [1, 2], steps=4)
    assert outside == [], sorted(set(outside))


def test_a_call_outside_the_engine_is_seen():
    """The guard itself: a direct call of the model is recorded."""
    model = _ResNetLike().eval()
    outside = _guarded(model)
    with torch.no_grad():
        model(torch.rand(1, 3, 8, 8))
    assert "<model>" in outside and "block.conv1" in outside
