"""The inference graph first built under ``torch.inference_mode`` (a prediction pass,
as ``fastcam explain`` and ``fastcam demo`` run before explaining) still serves a
gradient method afterwards: its copy holds normal tensors, not inference tensors."""
import copy

import torch
from torch import nn

import fastcam
from fastcam.engine import engine_for, graph_status


def _net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def test_gradient_method_after_a_prediction_in_inference_mode():
    model, fresh = _net(), _net()
    x = torch.rand(2, 3, 16, 16)
    with torch.inference_mode():
        engine_for(model).forward(x)                    # the graph is built here
    assert graph_status(model).startswith("inference graph")
    maps = fastcam.GradCAM(model, ["5"])(x, targets=[1, 4])
    want = fastcam.GradCAM(fresh, ["5"])(x, targets=[1, 4])
    torch.testing.assert_close(maps, want, rtol=1e-4, atol=1e-4)
