"""pytorch-grad-cam's README example runs unchanged on the fastcam front-end
(only the package name in the imports swapped) and gives the same results."""
import numpy as np
import pytest
import torch

pytest.importorskip("pytorch_grad_cam")
pytest.importorskip("cv2")

# pytorch-grad-cam's README "Using from code as a library", with a random-init
# model (no download) and a synthetic image in place of the file it reads.
SCRIPT = '''
import numpy as np
import torch
from {pkg} import GradCAM
from {pkg}.utils.model_targets import ClassifierOutputTarget
from {pkg}.utils.image import show_cam_on_image, preprocess_image
from torchvision.models import resnet50

torch.manual_seed(0)
model = resnet50()
target_layers = [model.layer4[-1]]
rgb_img = np.float32(np.random.default_rng(0).random((224, 224, 3)))
input_tensor = preprocess_image(rgb_img, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])

# We have to specify the target we want to generate the CAM for.
targets = [ClassifierOutputTarget(281)]

# Construct the CAM object once, and then re-use it on many images.
with GradCAM(model=model, target_layers=target_layers) as cam:
    # You can also pass aug_smooth=True and eigen_smooth=True, to apply smoothing.
    grayscale_cam = cam(input_tensor=input_tensor, targets=targets)
    # In this example grayscale_cam has only one image in the batch:
    grayscale_cam = grayscale_cam[0, :]
    visualization = show_cam_on_image(rgb_img, grayscale_cam, use_rgb=True)
    # You can also get the model outputs without having to redo inference
    model_outputs = cam.outputs
'''


def _run(pkg):
    namespace = {}
    exec(compile(SCRIPT.format(pkg=pkg), f"<readme:{pkg}>", "exec"), namespace)
    return namespace


def test_readme_script_runs_unchanged_with_the_same_results():
    theirs = _run("pytorch_grad_cam")
    ours = _run("fastcam.compat.pytorch_grad_cam")
    assert ours["grayscale_cam"].shape == (224, 224) and ours["grayscale_cam"].dtype == np.float32
    np.testing.assert_allclose(ours["grayscale_cam"], theirs["grayscale_cam"], atol=1e-4)
    vis_o, vis_t = ours["visualization"], theirs["visualization"]
    assert vis_o.shape == (224, 224, 3) and vis_o.dtype == np.uint8
    # uint8(255·map) may truncate to the neighbouring colour-map entry where the
    # maps differ by ~1e-6: a JET step (≤ 4 units) times the 0.5 blend, rarely
    diff = np.abs(vis_o.astype(int) - vis_t.astype(int))
    assert diff.max() <= 3 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())
    # fastcam's engine runs conv models on channels-last input (pytorch-grad-cam: NCHW):
    # oneDNN's other convolution kernels round the float32 logits differently (3e-5 here)
    torch.testing.assert_close(ours["model_outputs"], theirs["model_outputs"].detach(), rtol=1e-4, atol=1e-4)
