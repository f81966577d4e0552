"""fastcam.methods.sess natively: a known answer (one window covering the image: SESS is the
explainer's map rescaled), batched == per image, output range, the same numbers as the
pytorch-grad-cam front-end's fusion, clear errors."""
import numpy as np
import pytest
import torch
from torch import nn

import fastcam
from fastcam.methods.base import minmax
from fastcam.methods.sess import SESS, gaussian_blur, sliding_window, window_starts


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()


def test_one_window_is_the_explainers_map():
    model = _model()
    cam = fastcam.GradCAM(model, "2")
    x = torch.randn(2, 3, 32, 32)
    sess = SESS(cam, scales=[32], pool="max", smooth=False)
    torch.testing.assert_close(sess(x, [1, 4]), minmax(cam(x, [1, 4])), atol=1e-6, rtol=0)


def test_batched_equals_per_image_and_range():
    model = _model()
    cam = fastcam.GradCAM(model, "2")
    x = torch.randn(3, 3, 28, 36)
    sess = SESS(cam, num_scales=2, step_size=12, pre_filter_ratio=0.2, theta=0.1, batch_size=5)
    both = sess(x, [0, 2, 4])
    assert both.shape == (3, 28, 36) and both.dtype == torch.float32
    singles = torch.cat([sess(x[i:i + 1], [[0, 2, 4][i]]) for i in range(3)])
    torch.testing.assert_close(both, singles, atol=1e-5, rtol=0)
    assert float(both.amin()) == 0 and abs(float(both.amax()) - 1) < 1e-6
    # None: each image's predicted class; callables of an output row work as class indices
    predicted = model(x).argmax(1).tolist()
    torch.testing.assert_close(sess(x), sess(x, predicted))
    torch.testing.assert_close(sess(x, [lambda out, c=c: out[c] for c in predicted]), sess(x, predicted))


def test_same_fusion_as_the_grad_cam_front_end():
    from fastcam.compat.pytorch_grad_cam import SESS as FrontEnd
    from fastcam.compat.pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    model = _model()
    x = torch.randn(2, 3, 30, 30)
    front = FrontEnd(model, [model[2]], num_scales=2, step_size=10, smooth=False)
    theirs = front(x, [ClassifierOutputTarget(1), ClassifierOutputTarget(3)])
    fused = front.sess.fused_maps(
        x, lambda out, images: out.softmax(-1).gather(1, torch.tensor([1, 3])[images][:, None])[:, 0],
        lambda patches, images: torch.as_tensor(front.base_cam(
            patches, [ClassifierOutputTarget([1, 3][i]) for i in images.tolist()])))
    ours = minmax(fused).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_windows_and_blur():
    assert window_starts(10, 4, 4) == [0, 4, 6]
    assert sliding_window(6, 10, 4, 4) == [(0, 0), (4, 0), (6, 0), (0, 2), (4, 2), (6, 2)]
    flat = torch.full((1, 20, 17), 0.7)
    torch.testing.assert_close(gaussian_blur(flat), flat)            # a normalised kernel keeps constants


def test_errors():
    model = _model()
    cam = fastcam.GradCAM(model, "2")
    with pytest.raises(TypeError, match="explainer"):
        SESS(None)
    with pytest.raises(TypeError, match="engine"):
        SESS(lambda x, t: x[:, 0])
    with pytest.raises(ValueError, match="pool"):
        SESS(cam, pool="median")
    with pytest.raises(ValueError, match="pre_filter_ratio"):
        SESS(cam, pre_filter_ratio=1.0)
    with pytest.raises(ValueError, match="batch_size"):
        SESS(cam, batch_size=0)
    with pytest.raises(ValueError, match="at least the window size"):
        SESS(cam, scales=[24], window_size=32)(torch.randn(1, 3, 40, 40))
    with pytest.raises(ValueError, match="targets"):
        SESS(cam, num_scales=1)(torch.randn(2, 3, 20, 20), [1])
    with pytest.raises(ValueError, match="4-D"):
        SESS(cam)(torch.randn(3, 20, 20))
