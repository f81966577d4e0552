"""``pytorch_grad_cam.sobel_cam``: a Sobel-edge map of the image (a baseline that ignores
the model)."""
from __future__ import annotations

import numpy as np

from .utils.image import _cv2

__all__ = ["sobel_cam"]


def sobel_cam(img: np.ndarray) -> np.ndarray:
    """The edge strength of an RGB uint8 image (H, W, 3) -> uint8 (H, W): the 3×3 Sobel
    derivatives of its luma along x and y, each as a saturated ``|∂|``, averaged with
    equal weights (pytorch-grad-cam's ``sobel_cam``)."""
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"sobel_cam takes an RGB image (H, W, 3), got shape {img.shape}")
    cv2 = _cv2()
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    dx, dy = (cv2.convertScaleAbs(cv2.Sobel(gray, cv2.CV_64F, *order, ksize=3))
              for order in ((1, 0), (0, 1)))
    return cv2.addWeighted(dx, 0.5, dy, 0.5, 0)
