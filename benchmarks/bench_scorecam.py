"""Score-CAM on CPU, batch 1, all in the pytorch-grad-cam numerics mode.

- torchvision ResNet-18 (random init): fastcam vs pytorch-grad-cam vs TorchCAM,
  and the floor of running every channel — the model's K masked forwards at the
  same chunk size (here on copies prepared in advance, so building them is free);
- the bundled pretrained EfficientNet-Lite0 on the chelsea photo at ``_head_act``,
  where most channels are all zero and fastcam runs each distinct masked copy once:
  fastcam vs pytorch-grad-cam at its default batch_size 16, with the number of
  forwards fastcam ran and the largest difference between the two maps."""
import pytest
import torch
import torch.nn.functional as F

import fastcam
from fastcam.compat.numerics import PytorchGradCAMScoreCAM

from _scorecam_floor import k_masked_forwards, resnet18_case
from conftest import SMOKE

SIZE = 64 if SMOKE else 224
CHUNK = 32


@pytest.fixture(scope="module")
def setup():
    return resnet18_case(SIZE, "layer4")


def _group():
    return f"scorecam resnet18 B1 {SIZE}px chunk {CHUNK}"


def test_floor_k_masked_forwards(benchmark, setup):
    model, x, target, A = setup
    floor = k_masked_forwards(model, x, A, target, CHUNK)
    benchmark.group = _group()
    benchmark.extra_info["baseline"] = True
    benchmark.pedantic(floor, rounds=3, iterations=1, warmup_rounds=1)


def test_fastcam(benchmark, setup):
    model, x, target, _ = setup
    cam = PytorchGradCAMScoreCAM(model, "layer4", batch_size=CHUNK)
    benchmark.group = _group()
    benchmark.pedantic(cam, args=(x, [target]), rounds=3, iterations=1, warmup_rounds=1)


def test_pytorch_grad_cam(benchmark, setup):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x, target, _ = setup
    cam = pgc.ScoreCAM(model, [model.layer4])
    cam.batch_size = CHUNK
    benchmark.group = _group()
    try:
        benchmark.pedantic(cam, args=(x, [ClassifierOutputTarget(target)]), rounds=3,
                           iterations=1, warmup_rounds=1)
    finally:
        cam.activations_and_grads.release()


def test_torchcam(benchmark, setup):
    pytest.importorskip("torchcam")
    from torchcam.methods import ScoreCAM

    model, x, target, _ = setup
    extractor = ScoreCAM(model, target_layer="layer4", batch_size=CHUNK)

    def run():
        with torch.inference_mode():
            scores = model(x)
            low = extractor(target, scores)[0]
        return F.interpolate(low[:, None], size=(SIZE, SIZE), mode="bilinear")[:, 0]

    benchmark.group = _group()
    benchmark.extra_info["note"] = "TorchCAM's own numerics (softmax probs, bilinear)"
    try:
        benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    finally:
        extractor.remove_hooks()


# -- the bundled model on a real photo: each distinct masked copy runs once ----------
# EfficientNet-Lite0 (pretrained) at _head_act: 830 of the 1280 channels are all zero
# on chelsea at 224×224, so fastcam runs 451 masked forwards where pytorch-grad-cam
# runs 1280. Both at pytorch-grad-cam's default batch_size 16 and in its numerics.
# Smoke: 32×32 and the 96-channel layer _blocks.1._act1.
LITE_SIZE, LITE_LAYER = (32, "_blocks.1._act1") if SMOKE else (224, "_head_act")
LITE_CHUNK = 16
_lite_maps: dict = {}


@pytest.fixture(scope="module")
def lite():
    model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
    x, _ = fastcam.data.load_photos(["chelsea"], size=LITE_SIZE)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in model.normalization)
    x_model = (x - mean) / std       # both mask the tensor the model sees, as pytorch-grad-cam does
    with torch.no_grad():
        target = int(model(x_model).argmax(1))
    return model, x_model, target


def _lite_group():
    return f"scorecam efficientnet_lite0 chelsea {LITE_SIZE}px {LITE_LAYER} chunk {LITE_CHUNK}"


def test_lite_pytorch_grad_cam(benchmark, lite):
    pgc = pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model, x_model, target = lite
    cam = pgc.ScoreCAM(model, [model.get_submodule(LITE_LAYER)])
    # no batch_size attribute set: its default chunk of 16 copies (LITE_CHUNK)
    benchmark.group = _lite_group()
    benchmark.extra_info["baseline"] = True
    try:
        maps = benchmark.pedantic(cam, args=(x_model, [ClassifierOutputTarget(target)]),
                                  rounds=3, iterations=1)
    finally:
        cam.activations_and_grads.release()
    _lite_maps["pytorch-grad-cam"] = torch.as_tensor(maps)


def test_lite_fastcam(benchmark, lite):
    model, x_model, target = lite
    cam = PytorchGradCAMScoreCAM(model, LITE_LAYER, batch_size=LITE_CHUNK)
    benchmark.group = _lite_group()
    maps = benchmark.pedantic(cam, args=(x_model, [target]), rounds=3, iterations=1)
    ran = int(cam.last.extra["masked_forwards"][0].sum())
    channels = cam.last.activations[0].shape[1]
    benchmark.extra_info["masked_forwards"] = ran
    note = f"{ran} of {channels} masked forwards"
    if "pytorch-grad-cam" in _lite_maps:
        diff = float((maps - _lite_maps["pytorch-grad-cam"]).abs().max())
        benchmark.extra_info["max_abs_diff_vs_pytorch_grad_cam"] = diff
        note += f", max |map - pytorch-grad-cam's| {diff:.1e}"
    benchmark.extra_info["note"] = note
