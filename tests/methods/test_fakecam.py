"""Fake-CAM: the exact map (1 everywhere, 0 at the top-left pixel), registered as a
method, and its near-zero Average Drop on the real model (Opti-CAM, Table 1)."""
import torch
from torch import nn

import fastcam
from fastcam import metrics


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3)).eval()


def test_the_map_is_ones_but_the_top_left_pixel_for_any_model_image_and_class():
    model = _net()
    x = torch.rand(3, 3, 7, 5)
    maps = fastcam.explain(model, x, method="fakecam", targets=[0, 1, 2], target_layers="1")
    expected = torch.ones(3, 7, 5)
    expected[:, 0, 0] = 0
    assert maps.dtype == torch.float32 and torch.equal(maps, expected)
    cam = fastcam.FakeCAM(model, "1")
    y = torch.rand(1, 3, 7, 5) * 9
    assert torch.equal(cam(y, 2), expected[:1])
    with torch.no_grad():
        torch.testing.assert_close(cam.last.logits, model(y))   # the record is filled
    assert cam.last.targets.tolist() == [2] and cam.last.weights == []
    assert fastcam.METHODS["fakecam"] is fastcam.FakeCAM


def test_average_drop_is_near_zero_and_gain_near_zero_on_the_real_model():
    from fastcam.data import load_photos

    model = fastcam.models.efficientnet_lite0(pretrained=True).eval()
    x, _ = load_photos(["chelsea", "coffee"])
    norm = model.normalization
    maps = fastcam.FakeCAM(model, "_head_act", normalize=norm)(x, None)
    assert metrics.average_drop(model, x, maps, normalize=norm).max() < 0.01   # < 1 %
    assert metrics.average_gain(model, x, maps, normalize=norm).max() < 0.01
