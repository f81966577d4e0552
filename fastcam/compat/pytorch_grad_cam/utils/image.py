"""Image helpers with pytorch-grad-cam's names, defaults and results
(``pytorch_grad_cam.utils.image``).

OpenCV (``opencv-python-headless``, already a dependency of pytorch-grad-cam)
is needed only by :func:`show_cam_on_image` and imported when it is called.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["COLORMAP_JET", "show_cam_on_image", "preprocess_image", "deprocess_image",
           "scale_cam_image"]

#: ``cv2.COLORMAP_JET`` (its value, so that importing this module needs no OpenCV)
COLORMAP_JET = 2


def _cv2():
    try:
        import cv2
    except ImportError as err:      # pragma: no cover - depends on the environment
        raise ImportError("show_cam_on_image needs OpenCV: pip install opencv-python-headless") from err
    return cv2


def show_cam_on_image(img: np.ndarray, mask: np.ndarray, use_rgb: bool = False,
                      colormap: int = COLORMAP_JET, image_weight: float = 0.5) -> np.ndarray:
    """Overlay a CAM on an image; uint8 (H, W, 3).

    ``heat = colormap(uint8(255·mask)) / 255`` (OpenCV's colour map, BGR unless
    ``use_rgb``), ``out = (1 − image_weight)·heat + image_weight·img``, scaled by
    its maximum and returned as ``uint8(255·out)`` — pytorch-grad-cam's formula
    and defaults. ``img`` must be float in [0, 1] (RGB with ``use_rgb=True``).

    Better than pytorch-grad-cam: the arguments are checked before any work and
    raise ``ValueError`` (theirs: a bare ``Exception``, still caught by ``except
    Exception``), and a mask outside [0, 1] is clipped instead of wrapping
    around in the uint8 conversion (identical output for valid masks).
    """
    img = np.asarray(img)
    if np.max(img) > 1:
        raise ValueError("The input image should np.float32 in the range [0, 1]")
    if image_weight < 0 or image_weight > 1:
        raise ValueError(f"image_weight should be in the range [0, 1]. Got: {image_weight}")
    cv2 = _cv2()
    heatmap = cv2.applyColorMap(np.uint8(255 * np.clip(mask, 0, 1)), colormap)
    if use_rgb:
        heatmap = cv2.cvtColor(heatmap, cv2.COLOR_BGR2RGB)
    heatmap = np.float32(heatmap) / 255
    cam = (1 - image_weight) * heatmap + image_weight * img
    cam = cam / np.max(cam)
    return np.uint8(255 * cam)


def preprocess_image(img: np.ndarray, mean: Sequence[float] = (0.5, 0.5, 0.5),
                     std: Sequence[float] = (0.5, 0.5, 0.5)) -> torch.Tensor:
    """An (H, W, C) image -> a normalised (1, C, H, W) tensor: torchvision's
    ``ToTensor`` (uint8 divided by 255, float kept as it is, dtype kept) then
    ``(x − mean)/std`` per channel, as pytorch-grad-cam (defaults 0.5/0.5)."""
    arr = np.array(img, copy=True)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    if t.dtype == torch.uint8:
        t = t.to(torch.get_default_dtype()).div(255)
    if not t.is_floating_point():
        raise TypeError(f"preprocess_image needs a float or uint8 image, got {arr.dtype}")
    m = torch.as_tensor(mean, dtype=t.dtype).reshape(-1, 1, 1)
    s = torch.as_tensor(std, dtype=t.dtype).reshape(-1, 1, 1)
    return ((t - m) / s).unsqueeze(0)


def deprocess_image(img: np.ndarray) -> np.ndarray:
    """Contrast-stretch any array for display, uint8: centre, divide by
    ``std + 1e-5``, scale by 0.1, shift to 0.5, clip to [0, 1], times 255
    (pytorch-grad-cam's, after keras-grad-cam)."""
    img = img - np.mean(img)
    img = img / (np.std(img) + 1e-5)
    img = np.clip(img * 0.1 + 0.5, 0, 1)
    return np.uint8(img * 255)


def scale_cam_image(cam, target_size: Optional[Sequence[int]] = None) -> np.ndarray:
    """Per-map min-max scaling ``(m − min)/(1e-7 + max − min)``, then (optionally)
    bilinear resizing to ``target_size``, given as (width, height) — or
    (width, height, depth) for 3-D maps — like ``cv2.resize``. float32.

    Same results as pytorch-grad-cam's (OpenCV's INTER_LINEAR is the half-pixel
    bilinear rule of ``F.interpolate(align_corners=False)``), computed for the
    whole batch at once; 3-D maps are resized with ``scipy.ndimage.zoom`` as there.
    """
    if isinstance(cam, torch.Tensor):
        cam = cam.detach().cpu().numpy()
    cam = np.asarray(cam)
    if not np.issubdtype(cam.dtype, np.floating):
        cam = cam.astype(np.float32)
    if len(cam) == 0:
        return cam.astype(np.float32)
    axes = tuple(range(1, cam.ndim))
    lo = cam.min(axis=axes, keepdims=True)
    shifted = cam - lo
    scaled = (shifted / (1e-7 + shifted.max(axis=axes, keepdims=True))).astype(np.float32)
    if target_size is None:
        return scaled
    if scaled.ndim == 3:
        W, H = int(target_size[0]), int(target_size[1])
        up = F.interpolate(torch.from_numpy(scaled)[:, None], size=(H, W), mode="bilinear",
                           align_corners=False)
        return up[:, 0].numpy()
    from scipy.ndimage import zoom
    factors = [t / s for s, t in zip(scaled.shape[1:], tuple(target_size)[::-1])]
    return np.float32([zoom(m, factors) for m in scaled])
