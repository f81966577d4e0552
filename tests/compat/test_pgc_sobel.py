"""sobel_cam: the same edge map as pytorch-grad-cam's, byte for byte."""
import numpy as np
import pytest
from skimage import data

from fastcam.compat.pytorch_grad_cam.sobel_cam import sobel_cam

theirs = pytest.importorskip("pytorch_grad_cam.sobel_cam")


@pytest.mark.parametrize("img", [data.astronaut(), data.chelsea(),
                                 np.random.RandomState(0).randint(0, 256, (17, 9, 3)).astype(np.uint8),
                                 np.zeros((1, 1, 3), np.uint8)],
                         ids=["astronaut", "chelsea", "odd-random", "1x1"])
def test_equals_pytorch_grad_cam(img):
    ours = sobel_cam(img)
    assert ours.dtype == np.uint8 and ours.shape == img.shape[:2]
    np.testing.assert_array_equal(ours, theirs.sobel_cam(img))


def test_an_edge_is_found_and_a_flat_image_has_none():
    img = np.zeros((8, 8, 3), np.uint8)
    assert not sobel_cam(img).any()
    img[:, 4:] = 255
    edges = sobel_cam(img)
    assert edges[:, 3:5].min() > 0 and not edges[:, :2].any() and not edges[:, 6:].any()


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 4)])
def test_not_an_rgb_image_is_an_error(shape):
    with pytest.raises(ValueError, match="RGB"):
        sobel_cam(np.zeros(shape, np.uint8))
