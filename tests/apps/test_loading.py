"""The model loading shared by `fastcam generate`, `explain` and `eval`: weights
files, the model's normalisation, the option parser, the one error type."""
import argparse

import pytest
import torch
import torchvision
from torch import nn

import fastcam
from fastcam.data import IMAGENET_MEAN, IMAGENET_STD
from fastcam.apps.options import key_value
from fastcam.errors import UsageError
from fastcam.evaluation import EvalError
from fastcam.generation import GenerateError
from fastcam.models.loading import load_model, read_state_dict, resolve_layer
from fastcam.preflight import resolve_normalize


def test_normalize_means_the_models_own_statistics():
    bundled = load_model("efficientnet_lite0")
    assert resolve_normalize("imagenet", bundled) == ((0.5,) * 3, (0.5,) * 3)
    assert resolve_normalize("none", bundled) is None
    tv = load_model("torchvision:resnet18", size=32)
    assert resolve_normalize("imagenet", tv) == (tuple(IMAGENET_MEAN), tuple(IMAGENET_STD))
    assert resolve_normalize("0.1,0.2,0.3/1,2,3", tv) == ((0.1, 0.2, 0.3), (1.0, 2.0, 3.0))
    with pytest.raises(EvalError):
        resolve_normalize("1,2/0,1", tv)


def test_normalize_forms_of_the_python_api():
    bundled = load_model("efficientnet_lite0")
    assert resolve_normalize("auto", bundled) == ((0.5,) * 3, (0.5,) * 3)
    assert resolve_normalize(None, bundled) is None
    assert resolve_normalize(([0, 1, 2], [1, 1, 1]), bundled) == ((0.0, 1.0, 2.0), (1.0, 1.0, 1.0))
    with pytest.raises(UsageError, match="--normalize 'sometimes'"):
        resolve_normalize("sometimes", bundled)


def test_one_error_type():
    assert GenerateError is UsageError and EvalError is UsageError and issubclass(UsageError, ValueError)


def test_key_value():
    assert key_value("max_iter=50") == ("max_iter", 50)
    assert key_value("score-mode=logit") == ("score_mode", "logit")
    assert key_value("sizes=[1, 2]") == ("sizes", [1, 2])
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        key_value("max_iter")


def test_weights_files(tmp_path):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "ddp.pt")
    state = read_state_dict(tmp_path / "ddp.pt")
    assert state.keys() == net.state_dict().keys()
    loaded = load_model("torchvision:resnet18", tmp_path / "ddp.pt", size=64)
    assert loaded.model.fc.out_features == 10 and loaded.layer == "layer4"
    assert loaded.weights["file"] == "ddp.pt" and len(loaded.weights["sha256"]) == 64
    assert load_model("torchvision:resnet18", tmp_path / "ddp.pt", layer="layer4",
                      hash_weights=False).weights["sha256"] is None
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(UsageError, match="expected a state dict"):
        read_state_dict(tmp_path / "list.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(UsageError, match="not a readable state dict"):
        read_state_dict(tmp_path / "junk.pt")


def test_modules_and_random_weights():
    with pytest.warns(UserWarning, match="random weights"):
        a = load_model("torchvision:resnet18", layer="layer4")
    with pytest.warns(UserWarning, match="random weights"):
        b = load_model("torchvision:resnet18", layer="layer4")
    assert a.weights is None
    assert torch.equal(a.model.conv1.weight, b.model.conv1.weight)      # seeded: the same in every process
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    loaded = load_model(net, size=16)
    assert loaded.model is net and not net.training and loaded.name == "module:Sequential"
    assert loaded.layer == "1" and len(loaded.weights["sha256"]) == 64
    assert load_model(net, layer="0").weights == loaded.weights
    with pytest.raises(UsageError, match="did you mean"):
        resolve_layer(net, "01")
    with pytest.raises(UsageError, match="--model 'nope'"):
        load_model("nope")


def test_build_explainer_precision():
    from fastcam.preflight import build_explainer

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    assert build_explainer(fastcam.GradCAM, net, "1", None).engine.precision == "fp32"
    assert build_explainer(fastcam.GradCAM, net, "1", None, precision="fp16").engine.precision == "fp16"
    # the method option alone still works (fastcam eval's -o METHOD.precision=...), and may agree
    assert build_explainer(fastcam.GradCAM, net, "1", None, {"precision": "bf16"}).engine.precision == "bf16"
    assert build_explainer(fastcam.GradCAM, net, "1", None, {"precision": "bf16"},
                           precision="bf16").engine.precision == "bf16"
    with pytest.raises(UsageError, match="precision given twice"):
        build_explainer(fastcam.GradCAM, net, "1", None, {"precision": "fp16"}, precision="bf16")
    with pytest.raises(UsageError, match="choose from"):
        build_explainer(fastcam.GradCAM, net, "1", None, precision="fp64")


def test_check_precision_is_the_engines_as_a_usage_error(monkeypatch):
    from fastcam.preflight import check_precision

    assert check_precision("fp32", "cpu") == "fp32"
    with pytest.raises(UsageError, match="--precision fp64: precision must be one of"):
        check_precision("fp64", "cpu")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with pytest.raises(UsageError, match="--precision bf16: precision='bf16' cannot run on cpu"):
        check_precision("bf16", "cpu")
