"""Progress bars (issue 29, item 5): every call that runs many passes per image
shows a tqdm bar on stderr with ``progress=True``, none with ``False`` (or ``None``
when stderr is not a terminal, as under pytest's capture), and the maps and
metric values are the same either way."""
import pytest
import torch
from torch import nn

import fastcam
from fastcam import progress as progress_module
from fastcam.metrics import deletion_auc, insertion_auc, road


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 5)).eval()


X = torch.rand(2, 3, 16, 16)
TARGETS = [1, 3]
#: the many-pass methods, with options that keep them small (layer "4": 8x8 positions)
MANY_PASS = {
    "scorecam": {},
    "sscam": {"num_samples": 2, "seed": 0},
    "iscam": {"num_samples": 2},
    "smoothgradcampp": {"num_samples": 3, "seed": 0, "batch_size": 2},
    "opticam": {"max_iter": 3},
    "shapcam": {"permutations": 2, "fast_path": "never"},      # the general (tail) path
    "ablationcam": {"fast_path": "never"},                     # the tail path
}
LABEL = {"scorecam": "ScoreCAM", "sscam": "SSCAM", "iscam": "ISCAM", "smoothgradcampp": "SmoothGradCAMpp",
         "opticam": "OptiCAM", "shapcam": "ShapCAM", "ablationcam": "AblationCAM"}


@pytest.fixture
def bars(monkeypatch):
    """The bars the calls make (tqdm instances), to read their counts."""
    made = []
    real = progress_module._bar

    def recording(total, unit):
        made.append(real(total, unit))
        return made[-1]
    monkeypatch.setattr(progress_module, "_bar", recording)
    return made


@pytest.mark.parametrize("method", sorted(MANY_PASS))
def test_a_bar_on_stderr_and_the_same_maps(method, capsys, bars):
    model = _net()
    quiet = fastcam.explain(model, X, method, ["4"], TARGETS, progress=False, **MANY_PASS[method])
    assert capsys.readouterr().err == "" and not bars
    shown = fastcam.explain(model, X, method, ["4"], TARGETS, progress=True, **MANY_PASS[method])
    err = capsys.readouterr().err
    assert bars and LABEL[method] in err, err[-300:]
    for bar in bars:              # every pass counted (Opti-CAM may stop before max_iter)
        assert f"/{bar.total}" in err and 0 < bar.n <= bar.total
        assert bar.n == bar.total or method == "opticam"
    assert torch.equal(shown, quiet)
    # None: on only when stderr is a terminal (pytest's captured stderr is not)
    fastcam.explain(model, X, method, ["4"], TARGETS, progress=None, **MANY_PASS[method])
    assert capsys.readouterr().err == ""


def test_a_one_pass_method_shows_no_bar(capsys):
    fastcam.explain(_net(), X, "gradcam", ["4"], TARGETS, progress=True)
    assert capsys.readouterr().err == ""


def test_metrics_show_bars_and_give_the_same_values(capsys):
    model, maps = _net(), torch.rand(2, 16, 16)
    for name, metric, options in (("deletion", deletion_auc, {"steps": 4}),
                                  ("insertion", insertion_auc, {"steps": 4}),
                                  ("ROAD", road, {"percentiles": [20, 60], "tol": 0.1, "noise": 0.0})):
        quiet = metric(model, X, maps, TARGETS, progress=False, **options)
        assert capsys.readouterr().err == ""
        shown = metric(model, X, maps, TARGETS, progress=True, **options)
        assert name in capsys.readouterr().err
        assert torch.equal(shown, quiet), name


def test_progress_must_be_a_bool_or_none():
    with pytest.raises(TypeError, match="progress must be True, False or None"):
        fastcam.ScoreCAM(_net(), ["4"], progress="yes")


def test_a_scope_shows_bars_only_inside_and_closes_them_on_error(capsys, bars):
    def score(outputs, image):
        return outputs

    assert progress_module.counted(score, 4) is score               # no scope: untouched
    with pytest.raises(RuntimeError, match="stop"):
        with progress_module.scope(True, "work"):
            counted = progress_module.counted(score, 4)
            counted(torch.zeros(2), torch.zeros(2))
            bar, = bars
            raise RuntimeError("stop")
    assert bar.n == 2 and bar.disable          # counted, and closed by the scope
    assert "work" in capsys.readouterr().err
    assert progress_module.counted(score, 4) is score


def test_an_outer_scope_that_is_off_keeps_inner_calls_quiet(capsys, bars):
    """A command with its own bar (``fastcam eval``) turns its explainers' bars off."""
    with progress_module.scope(False, "eval"):
        fastcam.explain(_net(), X, "scorecam", ["4"], TARGETS, progress=True)
    assert not bars and capsys.readouterr().err == ""
